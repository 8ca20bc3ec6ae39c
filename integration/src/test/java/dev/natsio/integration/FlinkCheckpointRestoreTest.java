package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.lessThan;

import dev.natsio.beam.NatsPublishResult;
import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.JetStreamManagement;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import java.util.stream.Stream;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/**
 * Scenario 3, effectively once end to end on Flink: read stream A, transform, write stream B with
 * message ids. The job is cancelled mid-run and a new one restored from its last retained
 * checkpoint; B ends with every message exactly once, the restored job stores the rest, and what
 * it repeats is dropped by message id.
 */
public class FlinkCheckpointRestoreTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final TemporaryFolder checkpoints = new TemporaryFolder();

  private static final int COUNT = 20_000;

  @Test
  public void jobRestoredFromItsLastCheckpointWritesEachMessageExactlyOnce() throws Exception {
    try (Connection connection = SERVER.connect()) {
      createStream(connection, "source", "source.>");
      createStream(connection, "sink", "sink.>");
      publish(connection, "source.x", COUNT);
      JetStreamManagement jsm = connection.jetStreamManagement();

      String firstRun = "restore-first-" + UUID.randomUUID();
      PipelineResult first = copyJob(null, firstRun).run();
      try {
        // Cancelled as soon as a checkpoint is retained after some copies were stored. Flink's SDF
        // operator records its position every 10,000 messages or 10 s, so the checkpoint may lag
        // well behind what was stored: the restored job repeats those, and their ids drop them.
        EndToEndScenarios.awaitCount(jsm, "sink", 2_000);
        awaitCheckpoint();
      } finally {
        first.cancel();
      }
      Path checkpoint = awaitCheckpoint();
      long storedBeforeRestore = jsm.getStreamInfo("sink").getStreamState().getMsgCount();
      assertThat("the first job was stopped mid-run", storedBeforeRestore, lessThan((long) COUNT));

      String secondRun = "restore-second-" + UUID.randomUUID();
      PipelineResult second = copyJob(checkpoint.toString(), secondRun).run();
      try {
        EndToEndScenarios.awaitCount(jsm, "sink", COUNT);
        Thread.sleep(2_000); // Time for any extra, non-deduplicated message to land.
      } finally {
        second.cancel();
      }

      assertThat(jsm.getStreamInfo("sink").getStreamState().getMsgCount(), equalTo((long) COUNT));
      assertThat(sourceSequencesIn(jsm, "sink"), equalTo(LongStream.rangeClosed(1, COUNT).boxed().collect(Collectors.toCollection(TreeSet::new))));
      // What the restored job published: the messages the first job had not stored, and repeats of
      // ones it had, which the stream dropped by message id. (On Flink 1.19 the restore also
      // re-emits Beam's Impulse, so the read starts again from its start position beside the
      // restored ranges: see docs/runners.md. The message ids are what keeps B exact.)
      List<NatsPublishResult> republished = CollectingSink.collected(secondRun);
      long repeats = republished.stream().filter(NatsPublishResult::isDuplicate).count();
      assertThat("the restored job stored the rest", republished.size() - repeats, greaterThan(0L));
      assertThat("repeats were dropped by message id", repeats, greaterThan(0L));
    }
  }

  private Pipeline copyJob(String restoreFrom, String resultsId) {
    FlinkPipelineOptions options = FlinkPipelines.options(2);
    options.setStreaming(true);
    options.setAttachedMode(false);
    options.setCheckpointingInterval(500L);
    options.setStateBackend("filesystem");
    options.setStateBackendStoragePath(checkpoints.getRoot().toURI().toString());
    options.setRetainExternalizedCheckpointsOnCancellation(true);
    if (restoreFrom != null) {
      options.setSavepointPath(restoreFrom);
    }
    return EndToEndScenarios.copyJob(Pipeline.create(options), SERVER, "source", "sink", resultsId);
  }

  private static int checkpointNumber(Path checkpoint) {
    return Integer.parseInt(checkpoint.getFileName().toString().substring("chk-".length()));
  }

  /** The newest completed, retained checkpoint directory (chk-N holding _metadata). */
  private Path awaitCheckpoint() throws Exception {
    long deadline = System.currentTimeMillis() + 60_000;
    while (System.currentTimeMillis() < deadline) {
      Optional<Path> latest;
      try (Stream<Path> files = Files.walk(checkpoints.getRoot().toPath())) {
        latest = files.filter(p -> p.getFileName().toString().equals("_metadata"))
            .map(Path::getParent)
            .max(Comparator.comparingInt(FlinkCheckpointRestoreTest::checkpointNumber));
      }
      if (latest.isPresent()) {
        return latest.get();
      }
      Thread.sleep(200);
    }
    throw new AssertionError("No completed checkpoint under " + checkpoints.getRoot());
  }

  private static Set<Long> sourceSequencesIn(JetStreamManagement jsm, String stream) throws Exception {
    long last = jsm.getStreamInfo(stream).getStreamState().getLastSequence();
    Set<Long> sequences = new TreeSet<>();
    for (long sequence = 1; sequence <= last; sequence++) {
      sequences.add(Long.parseLong(jsm.getMessage(stream, sequence).getHeaders().getFirst("source-seq")));
    }
    return sequences;
  }
}
