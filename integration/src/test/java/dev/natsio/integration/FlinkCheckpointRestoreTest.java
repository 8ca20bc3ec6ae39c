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
import io.nats.client.KeyValue;
import io.nats.client.api.KeyValueConfiguration;
import io.nats.client.api.StorageType;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import java.util.stream.Stream;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/**
 * Scenario 3, effectively once end to end on Flink: read stream A, transform, write stream B with
 * message ids. The job is cancelled mid-run and a new one restored from its last retained
 * checkpoint; B ends with every message exactly once, the restored job stores the rest, and what
 * it repeats is dropped by message id. The same holds for a Key/Value bucket's history read.
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
    }
    assertRestoredJobCopiesEachOnce("sink", COUNT, (restoreFrom, resultsId) ->
        EndToEndScenarios.copyJob(Pipeline.create(restorableOptions(restoreFrom)), SERVER, "source", "sink", resultsId));
  }

  /**
   * The same for a Key/Value bucket read with every revision ({@code withHistory()}): the restored
   * job resumes at the checkpoint's next revision, and the sink holds each revision exactly once.
   */
  @Test
  public void keyValueHistoryJobRestoredFromItsLastCheckpointCopiesEachRevisionExactlyOnce() throws Exception {
    int keys = 500;
    int revisionsPerKey = 20;
    try (Connection connection = SERVER.connect()) {
      connection.keyValueManagement().create(KeyValueConfiguration.builder()
          .name("restored").maxHistoryPerKey(revisionsPerKey).storageType(StorageType.Memory).build());
      KeyValue kv = connection.keyValue("restored");
      for (int revision = 0; revision < revisionsPerKey; revision++) {
        for (int key = 0; key < keys; key++) {
          kv.put("k." + key, ("v" + revision).getBytes(StandardCharsets.UTF_8));
        }
      }
      createStream(connection, "kvsink", "kvsink.>");
    }
    assertRestoredJobCopiesEachOnce("kvsink", keys * revisionsPerKey, (restoreFrom, resultsId) -> {
      Pipeline pipeline = Pipeline.create(restorableOptions(restoreFrom));
      pipeline
          .apply("Read bucket", NatsIO.readKeyValue().withServers(SERVER.url()).withBucket("restored").withHistory())
          .apply("As messages", MapElements.into(TypeDescriptor.of(NatsMessage.class)).via(entry -> NatsMessage.of(
              "restored." + entry.getKey(), entry.getValue(), Map.of(), "KV_restored", entry.getRevision(), entry.getCreated())))
          .apply("Transform", ParDo.of(new EndToEndScenarios.SlowCopy("kvsink.copy")))
          .apply("Write", NatsIO.write().withServers(SERVER.url()).withJetStream()
              .withMessageIdFn(m -> "revision:" + m.getHeaders().get("source-seq").get(0)))
          .getPublishResults()
          .apply("Collect results", CollectingSink.into(resultsId));
      return pipeline;
    });
  }

  /** Builds a copy job, restored from a checkpoint when {@code restoreFrom} is not null. */
  private interface CopyJob {
    Pipeline create(String restoreFrom, String resultsId) throws java.io.IOException;
  }

  /**
   * Runs {@code job} until {@code sink} holds a tenth of {@code count} and a checkpoint is retained,
   * cancels it, restores a second run from that checkpoint, and checks that {@code sink} ends with
   * each of source positions 1..count once and that the second run resumed rather than restarted.
   */
  private void assertRestoredJobCopiesEachOnce(String sink, int count, CopyJob job) throws Exception {
    try (Connection connection = SERVER.connect()) {
      JetStreamManagement jsm = connection.jetStreamManagement();

      String firstRun = "restore-first-" + UUID.randomUUID();
      PipelineResult first = job.create(null, firstRun).run();
      try {
        // Cancelled as soon as a checkpoint is retained after some copies were stored. Copies stored
        // after that checkpoint are repeated by the restored job, and their ids drop them.
        EndToEndScenarios.awaitCount(jsm, sink, count / 10);
        awaitCheckpointAfter(latestCheckpoint());
      } finally {
        first.cancel();
      }
      Path checkpoint = awaitCheckpointRetainedAfterCancel();
      long storedBeforeRestore = jsm.getStreamInfo(sink).getStreamState().getMsgCount();
      assertThat("the first job was stopped mid-run", storedBeforeRestore, lessThan((long) count));

      String secondRun = "restore-second-" + UUID.randomUUID();
      PipelineResult second = job.create(checkpoint.toString(), secondRun).run();
      try {
        EndToEndScenarios.awaitCount(jsm, sink, count);
        Thread.sleep(2_000); // Time for any extra, non-deduplicated message to land.
      } finally {
        second.cancel();
      }

      assertThat(jsm.getStreamInfo(sink).getStreamState().getMsgCount(), equalTo((long) count));
      assertThat(sourceSequencesIn(jsm, sink), equalTo(LongStream.rangeClosed(1, count).boxed().collect(Collectors.toCollection(TreeSet::new))));
      // What the restored job published: the messages the first job had not stored, and repeats of
      // those it read after its last retained checkpoint, which the stream dropped by message id.
      // The read resumed at the checkpoint's position: it did not start again from the stream's start.
      List<NatsPublishResult> republished = CollectingSink.collected(secondRun);
      long repeats = republished.stream().filter(NatsPublishResult::isDuplicate).count();
      assertThat("the restored job stored the rest", republished.size() - repeats, greaterThan(0L));
      assertThat("the restored read resumed from the checkpoint, not from the start", (long) republished.size(), lessThan((long) count));
    }
  }

  /**
   * The same with a read of 4 partitions (parallelism 2, so two per subtask): the restored job
   * resumes every partition from the position its split had in the checkpoint. Per partition, the
   * sink ends with each message once (nothing skipped), and the restored job repeats fewer of the
   * partition's messages than the first job had stored (it did not read the partition again from
   * its start).
   */
  @Test
  public void partitionedJobRestoredFromItsLastCheckpointResumesEveryPartitionWhereItWas() throws Exception {
    try (Connection connection = SERVER.connect()) {
      createStream(connection, "psource", "psource.>");
      createStream(connection, "psink", "psink.>");
      // Message i (sequence i + 1) goes to partition i mod 4.
      publish(connection, i -> "psource." + (i % 4) + ".k" + i, COUNT, dev.natsio.beam.testing.JetStreamTestData::payload, i -> null);
      JetStreamManagement jsm = connection.jetStreamManagement();
      NatsIO.Read read = NatsIO.read().withServers(SERVER.url()).withStream("psource").withPartitions("psource.{{partition}}.>", 4);

      String firstRun = "prestore-first-" + UUID.randomUUID();
      PipelineResult first = EndToEndScenarios.copyJob(Pipeline.create(restorableOptions(null)), SERVER, read, "psink", firstRun).run();
      try {
        EndToEndScenarios.awaitCount(jsm, "psink", 2_000);
        // A subtask reads its two partitions in turns of a batch each: one may be well ahead.
        awaitEveryPartitionStored(firstRun);
        awaitCheckpointAfter(latestCheckpoint());
      } finally {
        first.cancel();
      }
      Path checkpoint = awaitCheckpointRetainedAfterCancel();
      long[] storedByFirst = perPartition(CollectingSink.<NatsPublishResult>collected(firstRun), r -> !r.isDuplicate());

      String secondRun = "prestore-second-" + UUID.randomUUID();
      PipelineResult second = EndToEndScenarios.copyJob(Pipeline.create(restorableOptions(checkpoint.toString())), SERVER, read, "psink", secondRun).run();
      try {
        EndToEndScenarios.awaitCount(jsm, "psink", COUNT);
        Thread.sleep(2_000); // Time for any extra, non-deduplicated message to land.
      } finally {
        second.cancel();
      }

      assertThat(jsm.getStreamInfo("psink").getStreamState().getMsgCount(), equalTo((long) COUNT));
      assertThat(sourceSequencesIn(jsm, "psink"), equalTo(LongStream.rangeClosed(1, COUNT).boxed().collect(Collectors.toCollection(TreeSet::new))));
      long[] repeatedBySecond = perPartition(CollectingSink.<NatsPublishResult>collected(secondRun), NatsPublishResult::isDuplicate);
      for (int partition = 0; partition < 4; partition++) {
        assertThat("partition " + partition + " was read by the first job", storedByFirst[partition], greaterThan(0L));
        assertThat("partition " + partition + " resumed from the checkpoint, not from its start",
            repeatedBySecond[partition], lessThan(storedByFirst[partition]));
      }
    }
  }

  /** Until the job writing to collection {@code id} has stored a message of every partition. */
  private static void awaitEveryPartitionStored(String id) throws InterruptedException {
    long deadline = System.currentTimeMillis() + 120_000;
    long[] stored;
    while (Arrays.stream(stored = perPartition(CollectingSink.<NatsPublishResult>collected(id), r -> !r.isDuplicate())).anyMatch(n -> n == 0)) {
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("the first job stored no message of some partition: " + Arrays.toString(stored));
      }
      Thread.sleep(100);
    }
  }

  /** How many of {@code results} match, per source partition (from the "source:SEQ" message id). */
  private static long[] perPartition(List<NatsPublishResult> results, java.util.function.Predicate<NatsPublishResult> which) {
    long[] counts = new long[4];
    for (NatsPublishResult result : results) {
      if (which.test(result)) {
        long sequence = Long.parseLong(result.getMessageId().substring("source:".length()));
        counts[(int) ((sequence - 1) % 4)]++;
      }
    }
    return counts;
  }

  private FlinkPipelineOptions restorableOptions(String restoreFrom) throws java.io.IOException {
    FlinkPipelineOptions options = FlinkPipelines.options(2);
    options.setStreaming(true);
    options.setAttachedMode(false);
    options.setCheckpointingInterval(500L);
    options.setStateBackend("filesystem");
    options.setStateBackendStoragePath(checkpoints.getRoot().toURI().toString());
    options.setExternalizedCheckpointsEnabled(true);
    options.setRetainExternalizedCheckpointsOnCancellation(true);
    if (restoreFrom != null) {
      // FlinkRunner applies setSavepointPath only to a remote cluster; its local mini-cluster takes
      // the restore path from the Flink configuration it loads.
      options.setFlinkConfDir(flinkConfRestoringFrom(restoreFrom));
    }
    return options;
  }

  /** A Flink configuration directory whose flink-conf.yaml restores jobs from {@code checkpoint}. */
  private String flinkConfRestoringFrom(String checkpoint) throws java.io.IOException {
    java.io.File dir = checkpoints.newFolder("conf");
    Files.writeString(dir.toPath().resolve("flink-conf.yaml"), "execution.savepoint.path: " + checkpoint + "\n");
    return dir.getAbsolutePath();
  }

  private static int checkpointNumber(Path checkpoint) {
    return Integer.parseInt(checkpoint.getFileName().toString().substring("chk-".length()));
  }

  /**
   * The checkpoint the cancelled job retained: the newest completed one once no newer one appears
   * and it stays in place for two seconds (Flink deletes a checkpoint a newer one subsumes).
   */
  private Path awaitCheckpointRetainedAfterCancel() throws Exception {
    Path latest = awaitCheckpoint();
    long stableSince = System.currentTimeMillis();
    while (System.currentTimeMillis() - stableSince < 2_000) {
      Thread.sleep(200);
      Path now = awaitCheckpoint();
      if (!now.equals(latest) || !Files.exists(latest.resolve("_metadata"))) {
        latest = now;
        stableSince = System.currentTimeMillis();
      }
    }
    return latest;
  }

  /**
   * A checkpoint completed after {@code previous} (null: any): one taken now holds what the job
   * has done so far, whereas the newest one may predate it (a read that emits a batch of messages
   * through a slow step is checkpointed only between batches).
   */
  private void awaitCheckpointAfter(@Nullable Path previous) throws Exception {
    long deadline = System.currentTimeMillis() + 60_000;
    Path latest;
    while ((latest = latestCheckpoint()) == null || (previous != null && checkpointNumber(latest) <= checkpointNumber(previous))) {
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("No checkpoint completed after " + previous + " under " + checkpoints.getRoot());
      }
      Thread.sleep(200);
    }
  }

  /** The newest completed checkpoint directory (chk-N holding _metadata), or null when there is none yet. */
  private @Nullable Path latestCheckpoint() throws java.io.IOException {
    try (Stream<Path> files = Files.walk(checkpoints.getRoot().toPath())) {
      return files.filter(p -> p.getFileName().toString().equals("_metadata"))
          .map(Path::getParent)
          .max(Comparator.comparingInt(FlinkCheckpointRestoreTest::checkpointNumber))
          .orElse(null);
    }
  }

  /** The newest completed, retained checkpoint directory, once there is one. */
  private Path awaitCheckpoint() throws Exception {
    awaitCheckpointAfter(null);
    return latestCheckpoint();
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
