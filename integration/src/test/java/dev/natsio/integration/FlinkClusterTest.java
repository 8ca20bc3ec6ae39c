package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;
import static org.hamcrest.Matchers.hasSize;
import static org.hamcrest.Matchers.lessThanOrEqualTo;

import com.fasterxml.jackson.databind.JsonNode;
import dev.natsio.beam.testing.FlinkTestCluster;
import dev.natsio.beam.testing.NatsTestServer;
import dev.natsio.examples.flink.BackfillTotals;
import dev.natsio.examples.flink.WindowedCounts;
import dev.natsio.examples.flink.WorkQueueWorker;
import io.nats.client.Connection;
import io.nats.client.IterableConsumer;
import io.nats.client.JetStream;
import io.nats.client.JetStreamManagement;
import io.nats.client.Message;
import io.nats.client.api.OrderedConsumerConfiguration;
import io.nats.client.api.RetentionPolicy;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.junit.After;
import org.junit.AfterClass;
import org.junit.Before;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * NatsIO on a real Flink cluster: a JobManager and two TaskManagers in their own JVMs
 * ({@link FlinkTestCluster}), jobs submitted from a client JVM with the examples' job jar, as a
 * user deploys them. The jobs are the examples in {@code dev.natsio.examples.flink}. One cluster
 * and one nats-server serve the whole class; a TaskManager a test kills is replaced before the next.
 */
public class FlinkClusterTest {
  private static final int TASK_MANAGERS = 2;
  private static final int SLOTS_PER_TASK_MANAGER = 2;
  private static final Duration JOB_TIMEOUT = Duration.ofSeconds(120);
  /**
   * Streaming jobs: checkpoint every second, restart after a lost TaskManager a second later.
   * Checkpoints that frequent need {@code --finishBundleBeforeCheckpointing=true}, or Beam's Flink
   * operators hold the watermark back and no window closes (RunnerOptions; with checkpoints every
   * second and without it, these jobs wrote no window in 120 s in 4 of 4 runs of this class).
   */
  private static final String[] STREAMING = {
      "--streaming=true", "--parallelism=2", "--checkpointingInterval=1000", "--finishBundleBeforeCheckpointing=true",
      "--numberOfExecutionRetries=20", "--executionRetryDelay=1000"};

  private static NatsTestServer server;
  private static FlinkTestCluster cluster;

  @BeforeClass
  public static void startClusters() {
    server = NatsTestServer.jetStream().start();
    try {
      cluster = FlinkTestCluster.start(TASK_MANAGERS, SLOTS_PER_TASK_MANAGER);
    } catch (RuntimeException | Error e) {
      server.close();
      throw e;
    }
  }

  @AfterClass
  public static void stopClusters() {
    try {
      if (cluster != null) {
        cluster.close();
      }
    } finally {
      server.close();
    }
  }

  /** Every test starts with two TaskManagers and all slots free, whatever the previous one killed. */
  @Before
  public void replaceKilledTaskManagers() {
    while (cluster.runningTaskManagers().size() < TASK_MANAGERS) {
      cluster.startTaskManager();
    }
    cluster.awaitTaskManagers(TASK_MANAGERS);
    cluster.awaitFreeSlots(TASK_MANAGERS * SLOTS_PER_TASK_MANAGER);
  }

  @After
  public void cancelJobs() {
    cluster.cancelAll();
  }

  @Test
  public void windowedJobRestoredFromItsLastCheckpointAfterATaskManagerIsKilledWritesEachWindowOnce() throws Exception {
    createStreams("live");
    try (Traffic traffic = Traffic.start(server, "live.in.x")) {
      String job = cluster.submit(WindowedCounts.class.getName(), withStreaming(
          "--natsUrl=" + server.url(), "--inputStream=live_in", "--outputSubject=live.out"));
      cluster.awaitJobRunning(job, JOB_TIMEOUT);
      awaitStoredAtLeast("live_out", 3, job);
      // A checkpoint taken after these windows were written holds a position past their messages.
      long readBeforeCheckpoint = sumOfCounts(readAll("live_out"));
      // (The next one may have been triggered before: the one after it was not.)
      cluster.awaitCompletedCheckpoints(job, cluster.checkpoints(job).path("counts").path("completed").asLong(), 2);

      long killedAt = System.nanoTime();
      long publishedAtKill = traffic.published();
      cluster.killTaskManager(cluster.runningTaskManagers().get(0));
      FlinkTestCluster.await("the job to restore a checkpoint", JOB_TIMEOUT,
          () -> cluster.checkpoints(job).path("latest").path("restored").has("id"));
      cluster.awaitJobRunning(job, JOB_TIMEOUT);
      long recoveryMillis = (System.nanoTime() - killedAt) / 1_000_000;
      long restoredCheckpoint = cluster.checkpoints(job).path("latest").path("restored").path("id").asLong();
      long published = traffic.published();
      FlinkTestCluster.await("traffic after the restart", JOB_TIMEOUT, () -> traffic.published() >= published + 400);
      traffic.stop();

      assertThat("restored from a checkpoint", restoredCheckpoint, greaterThan(0L));
      int windows = assertWindowCountsExact("live_in", "live_out");
      // The restored read resumed at the checkpoint's position: it did not read the messages of
      // the windows written before that checkpoint again (the message ids would hide it in the output).
      long readAfterRestore = cluster.settledRecordsSent(job, "Read/Read stream live_in");
      assertThat("messages read after the restore", readAfterRestore, greaterThanOrEqualTo(traffic.published() - publishedAtKill));
      assertThat("messages read after the restore", readAfterRestore, lessThanOrEqualTo(traffic.published() - readBeforeCheckpoint));
      System.out.printf("kill test: %d messages, %d at the kill; running again from checkpoint %d %d ms after the kill; "
          + "%d read after the restore; %d windows, each counted exactly%n",
          traffic.published(), publishedAtKill, restoredCheckpoint, recoveryMillis, readAfterRestore, windows);
    }
  }

  @Test
  public void jobStoppedWithASavepointAndResubmittedFromItResumesTheReadWhereItStopped() throws Exception {
    createStreams("savepoint");
    try (Traffic traffic = Traffic.start(server, "savepoint.in.x")) {
      String[] args = withStreaming("--natsUrl=" + server.url(), "--inputStream=savepoint_in", "--outputSubject=savepoint.out");
      String first = cluster.submit(WindowedCounts.class.getName(), args);
      cluster.awaitJobRunning(first, JOB_TIMEOUT);
      awaitStoredAtLeast("savepoint_out", 3, first);
      // The read has one split: Beam's Flink source ends the subtask without one soon after the
      // start, and a stop with savepoint taken while it ends fails ("Task local checkpoint failure").
      FlinkTestCluster.await("the read's subtask without a split to finish", JOB_TIMEOUT,
          () -> cluster.finishedSubtasks(first, "Read/Read stream savepoint_in") == 1);

      String savepoint = cluster.stopWithSavepoint(first);
      cluster.awaitJobState(first, "FINISHED", JOB_TIMEOUT);
      long publishedAtStop = traffic.published();
      // Messages keep arriving while no job runs: the resubmitted job must start at the first of them.
      FlinkTestCluster.await("traffic while stopped", JOB_TIMEOUT, () -> traffic.published() >= publishedAtStop + 200);
      List<String> resumed = new ArrayList<>(List.of(args));
      resumed.add("--savepointPath=" + savepoint);
      String second = cluster.submit(WindowedCounts.class.getName(), resumed.toArray(String[]::new));
      cluster.awaitJobRunning(second, JOB_TIMEOUT);
      JsonNode restored = cluster.checkpoints(second).path("latest").path("restored");
      long published = traffic.published();
      FlinkTestCluster.await("traffic after the resubmission", JOB_TIMEOUT, () -> traffic.published() >= published + 400);
      traffic.stop();

      assertThat("the second job restored the savepoint: " + restored, restored.path("is_savepoint").asBoolean(), equalTo(true));
      // A window open at the stop is counted by both jobs: its count is exact only if the second
      // job read on from the first message the first job had not read.
      int windows = assertWindowCountsExact("savepoint_in", "savepoint_out");
      // The two jobs' reads together read each message once.
      long readByFirst = cluster.settledRecordsSent(first, "Read/Read stream savepoint_in");
      long total = traffic.published();
      assertThat("messages read by the first job", readByFirst, greaterThan(0L));
      assertThat("messages read by both jobs", readByFirst + cluster.settledRecordsSent(second, "Read/Read stream savepoint_in"), equalTo(total));
      System.out.printf("savepoint test: %d messages, %d before the stop, %d published before the second job ran; "
          + "%d read by the first job, the rest by the second; %d windows, each counted exactly%n",
          total, publishedAtStop, published, readByFirst, windows);
    }
  }

  @Test
  public void boundedBackfillSplitAcrossTwoTaskManagersCountsEachMessageOnce() throws Exception {
    createStreams("backfill");
    Map<String, Long> expected = Map.of("backfill.in.a", 6_000L, "backfill.in.b", 4_000L, "backfill.in.c", 2_000L);
    try (Connection connection = server.connect()) {
      for (Map.Entry<String, Long> subject : expected.entrySet()) {
        publish(connection, subject.getKey(), subject.getValue().intValue());
      }
    }
    String job = cluster.submit(BackfillTotals.class.getName(),
        "--streaming=false", "--parallelism=2", "--splitSize=1000",
        "--natsUrl=" + server.url(), "--inputStream=backfill_in", "--outputSubject=backfill.out");
    cluster.awaitJobState(job, "FINISHED", JOB_TIMEOUT);

    Map<String, Long> totals = new TreeMap<>();
    for (Message result : readAll("backfill_out")) {
      String[] subjectAndCount = new String(result.getData(), StandardCharsets.UTF_8).split(" ");
      assertThat("one total per subject", totals.put(subjectAndCount[0], Long.parseLong(subjectAndCount[1])), equalTo(null));
    }
    assertThat(totals, equalTo(new TreeMap<>(expected)));
    FlinkTestCluster.await("per-TaskManager record counts", Duration.ofSeconds(30),
        () -> cluster.taskManagersThatReadRecords(job, "Read").size() == TASK_MANAGERS);
    System.out.printf("backfill test: totals %s read on TaskManagers %s%n", totals, cluster.taskManagersThatReadRecords(job, "Read"));
  }

  @Test
  public void durableConsumerOnAWorkQueueSurvivesATaskManagerKillWithNothingLostAndTheQueueEmpty() throws Exception {
    try (Connection connection = server.connect()) {
      createStream(connection, StreamConfiguration.builder().name("work_in").subjects("work.in.>")
          .retentionPolicy(RetentionPolicy.WorkQueue).storageType(StorageType.File).build());
      createStream(connection, "work_out", "work.out");
    }
    try (Traffic traffic = Traffic.start(server, "work.in.item")) {
      String job = cluster.submit(WorkQueueWorker.class.getName(), withStreaming(
          "--natsUrl=" + server.url(), "--inputStream=work_in", "--consumer=workers", "--ackWaitSeconds=5",
          "--outputSubject=work.out"));
      cluster.awaitJobRunning(job, JOB_TIMEOUT);
      awaitStoredAtLeast("work_out", 300);
      cluster.awaitCompletedCheckpoints(job, 0, 2);

      cluster.killTaskManager(cluster.runningTaskManagers().get(0));
      FlinkTestCluster.await("the job to restore a checkpoint", JOB_TIMEOUT,
          () -> cluster.checkpoints(job).path("latest").path("restored").has("id"));
      cluster.awaitJobRunning(job, JOB_TIMEOUT);
      long published = traffic.published();
      FlinkTestCluster.await("traffic after the restart", JOB_TIMEOUT, () -> traffic.published() >= published + 400);
      traffic.stop();
      long total = traffic.published();

      JetStreamManagement jsm = server.sharedConnection().jetStreamManagement();
      FlinkTestCluster.await("the work queue to empty", JOB_TIMEOUT,
          () -> uncheckedMessageCount(jsm, "work_in") == 0 && uncheckedMessageCount(jsm, "work_out") >= total);
      Set<Long> done = new TreeSet<>();
      for (Message result : readAll("work_out")) {
        done.add(Long.parseLong(result.getHeaders().getFirst(WorkQueueWorker.SOURCE_SEQUENCE)));
      }
      assertThat(uncheckedMessageCount(jsm, "work_out"), equalTo(total));
      assertThat(done, equalTo(LongStream.rangeClosed(1, total).boxed().collect(Collectors.toCollection(TreeSet::new))));
      System.out.printf("work-queue test: %d items, %d results, queue empty%n", total, done.size());
    }
  }

  private static String[] withStreaming(String... args) {
    List<String> all = new ArrayList<>(List.of(STREAMING));
    all.addAll(List.of(args));
    return all.toArray(String[]::new);
  }

  /** Streams {@code <name>_in} on {@code <name>.in.>} and {@code <name>_out} on {@code <name>.out}. */
  private static void createStreams(String name) throws Exception {
    Connection connection = server.sharedConnection();
    createStream(connection, name + "_in", name + ".in.>");
    createStream(connection, name + "_out", name + ".out");
  }

  private static void awaitStoredAtLeast(String stream, long count) {
    JetStreamManagement jsm = jsm();
    FlinkTestCluster.await(count + " messages in " + stream, JOB_TIMEOUT, () -> uncheckedMessageCount(jsm, stream) >= count);
  }

  /** As {@link #awaitStoredAtLeast(String, long)}, saying on failure where the job writing them stood. */
  private static void awaitStoredAtLeast(String stream, long count, String job) {
    try {
      awaitStoredAtLeast(stream, count);
    } catch (AssertionError e) {
      throw new AssertionError(e.getMessage() + "; " + cluster.describe(job), e);
    }
  }

  /**
   * Asserts that the output holds one count per window of the input (by publish time, one-second
   * windows), each equal to the number of input messages published in that window: every message
   * counted once, no window missing or written twice.
   */
  private static int assertWindowCountsExact(String input, String output) throws Exception {
    Map<Long, Long> expected = new TreeMap<>();
    for (Message message : readAll(input)) {
      long millis = message.metaData().timestamp().toInstant().toEpochMilli();
      expected.merge(millis - Math.floorMod(millis, 1_000L), 1L, Long::sum);
    }
    JetStreamManagement jsm = jsm();
    try {
      FlinkTestCluster.await("a count for each of the " + expected.size() + " windows", JOB_TIMEOUT,
          () -> uncheckedMessageCount(jsm, output) >= expected.size());
    } catch (AssertionError e) {
      // The comparison below says which windows are missing or wrong.
    }
    Map<Long, Long> written = new TreeMap<>();
    List<Message> results = readAll(output);
    for (Message result : results) {
      written.put(Long.parseLong(result.getHeaders().getFirst(WindowedCounts.WINDOW_START)),
          Long.parseLong(new String(result.getData(), StandardCharsets.UTF_8)));
    }
    assertThat(written, equalTo(expected));
    assertThat("one result per window", results, hasSize(expected.size()));
    return expected.size();
  }

  private static long sumOfCounts(List<Message> results) {
    return results.stream().mapToLong(result -> Long.parseLong(new String(result.getData(), StandardCharsets.UTF_8))).sum();
  }

  /** Every message of a stream, in order, read with an ordered consumer. */
  private static List<Message> readAll(String stream) throws Exception {
    Connection connection = server.sharedConnection();
    long count = connection.jetStreamManagement().getStreamInfo(stream).getStreamState().getMsgCount();
    List<Message> messages = new ArrayList<>();
    try (IterableConsumer consumer = connection.getStreamContext(stream).createOrderedConsumer(new OrderedConsumerConfiguration()).iterate()) {
      while (messages.size() < count) {
        Message message = consumer.nextMessage(Duration.ofSeconds(10));
        if (message == null) {
          throw new AssertionError("Read " + messages.size() + " of the " + count + " messages in " + stream);
        }
        messages.add(message);
      }
    }
    return messages;
  }

  private static JetStreamManagement jsm() {
    try {
      return server.sharedConnection().jetStreamManagement();
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private static long uncheckedMessageCount(JetStreamManagement jsm, String stream) {
    try {
      return jsm.getStreamInfo(stream).getStreamState().getMsgCount();
    } catch (Exception e) {
      throw new IllegalStateException("Could not read the state of stream " + stream, e);
    }
  }

  /** Publishes to one subject from a thread of its own, about 200 messages a second, until stopped. */
  private static final class Traffic implements AutoCloseable {
    private final AtomicLong published = new AtomicLong();
    private final Thread thread;
    private volatile boolean running = true;
    private volatile Exception failure;

    private Traffic(NatsTestServer server, String subject) {
      thread = new Thread(() -> {
        try (Connection connection = server.connect()) {
          JetStream js = connection.jetStream();
          while (running) {
            js.publish(subject, ("t" + published.get()).getBytes(StandardCharsets.UTF_8));
            published.incrementAndGet();
            Thread.sleep(5);
          }
        } catch (Exception e) {
          failure = e;
        }
      }, "traffic-" + subject);
    }

    static Traffic start(NatsTestServer server, String subject) {
      Traffic traffic = new Traffic(server, subject);
      traffic.thread.start();
      return traffic;
    }

    long published() {
      if (failure != null) {
        throw new IllegalStateException("Publishing test traffic failed", failure);
      }
      return published.get();
    }

    void stop() throws InterruptedException {
      running = false;
      thread.join(10_000);
      published();
    }

    @Override
    public void close() throws InterruptedException {
      stop();
    }
  }
}
