package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.lessThan;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.NatsPublishResult;
import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.JetStreamManagement;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
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
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/**
 * Scenario 3, effectively once end to end on Flink: read stream A, transform, write stream B with
 * message ids. The job is cancelled mid-run and a new one restored from its last retained
 * checkpoint; B ends with every message exactly once, and the restored job re-read only what
 * followed the checkpoint.
 */
public class FlinkCheckpointRestoreTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final TemporaryFolder checkpoints = new TemporaryFolder();

  private static final int COUNT = 25_000;

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
        // Flink's SDF operator stores a residual restriction every 10,000 outputs or 10 s, so the
        // first checkpoints still hold the initial position. Past 12,000 copies, the next checkpoint
        // holds a later one; the job is cancelled as soon as that checkpoint is retained.
        awaitMessages(jsm, "sink", 12_000);
        awaitCheckpointAfter(checkpointNumber(awaitCheckpoint()));
      } finally {
        first.cancel();
      }
      Path checkpoint = awaitCheckpoint();
      long storedBeforeRestore = jsm.getStreamInfo("sink").getStreamState().getMsgCount();
      assertThat("the first job was stopped mid-run", storedBeforeRestore, lessThan((long) COUNT));

      String secondRun = "restore-second-" + UUID.randomUUID();
      PipelineResult second = copyJob(checkpoint.toString(), secondRun).run();
      try {
        awaitMessages(jsm, "sink", COUNT);
        Thread.sleep(2_000); // Time for any extra, non-deduplicated message to land.
      } finally {
        second.cancel();
      }

      assertThat(jsm.getStreamInfo("sink").getStreamState().getMsgCount(), equalTo((long) COUNT));
      assertThat(sourceSequencesIn(jsm, "sink"), equalTo(LongStream.rangeClosed(1, COUNT).boxed().collect(Collectors.toCollection(TreeSet::new))));
      List<NatsPublishResult> republished = CollectingSink.collected(secondRun);
      assertThat("the restored job resumed from the checkpoint, not the start", (long) republished.size(), lessThan((long) COUNT));
      assertThat(republished.size(), greaterThan(0));
    }
  }

  private Pipeline copyJob(String restoreFrom, String resultsId) throws IOException {
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
    Pipeline pipeline = Pipeline.create(options);
    pipeline
        .apply("Read A", NatsIO.read().withServers(SERVER.url()).withStream("source"))
        .apply("Transform", ParDo.of(new SlowUppercase()))
        .apply("Write B", NatsIO.write().withServers(SERVER.url()).withJetStream()
            .withMessageIdFn(m -> "source:" + m.getHeaders().get("source-seq").get(0)))
        .getPublishResults()
        .apply("Collect results", CollectingSink.into(resultsId));
    return pipeline;
  }

  /** The transform under test; slow enough (about 1 ms a message) for a checkpoint to land mid-run. */
  static final class SlowUppercase extends DoFn<NatsMessage, NatsMessage> {
    @ProcessElement
    public void process(@Element NatsMessage in, OutputReceiver<NatsMessage> out) throws InterruptedException {
      Thread.sleep(1);
      out.output(NatsMessage.create(
          "sink.copy",
          in.getPayloadAsString().toUpperCase().getBytes(StandardCharsets.UTF_8),
          Map.of("source-seq", List.of(String.valueOf(in.getSequence())))));
    }
  }

  private Path awaitCheckpointAfter(int number) throws Exception {
    long deadline = System.currentTimeMillis() + 60_000;
    Path latest = awaitCheckpoint();
    while (checkpointNumber(latest) <= number) {
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("No checkpoint after chk-" + number);
      }
      Thread.sleep(100);
      latest = awaitCheckpoint();
    }
    return latest;
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

  private static void awaitMessages(JetStreamManagement jsm, String stream, long count) throws Exception {
    long deadline = System.currentTimeMillis() + 180_000;
    while (jsm.getStreamInfo(stream).getStreamState().getMsgCount() < count) {
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("stream " + stream + " holds " + jsm.getStreamInfo(stream).getStreamState().getMsgCount() + " of " + count);
      }
      Thread.sleep(200);
    }
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
