package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.JetStreamTestData;
import dev.natsio.beam.testing.NatsTestServer;
import dev.natsio.beam.testing.SequenceSummary;
import io.nats.client.Connection;
import io.nats.client.JetStreamManagement;
import io.nats.client.api.MessageInfo;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.function.Supplier;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.transforms.windowing.FixedWindows;
import org.apache.beam.sdk.transforms.windowing.IntervalWindow;
import org.apache.beam.sdk.transforms.windowing.Window;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Duration;

/**
 * End-to-end scenarios run on every runner: each test class supplies the pipelines (Direct,
 * Flink) and a server; the scenario publishes its own data, runs, and compares the exact result
 * with what it published.
 */
final class EndToEndScenarios {
  static final Duration WINDOW = Duration.standardSeconds(1);

  private EndToEndScenarios() {}

  /**
   * Scenario 1, backfill: a bounded read of a {@code count}-message stream, split across workers,
   * outputs each message exactly once.
   */
  static void backfill(NatsTestServer server, Pipeline pipeline, int count) throws Exception {
    String stream = "backfill_" + shortId();
    try (Connection connection = server.connect()) {
      createStream(connection, stream, stream + ".>");
      publish(connection, stream + ".x", count);
    }
    String id = "backfill-" + UUID.randomUUID();
    pipeline
        .apply(NatsIO.read().withServers(server.url()).withStream(stream).withStopAtEndOfStream().withSplitSize(count / 8))
        .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
        .apply(SequenceSummary.globally())
        .apply(CollectingSink.into(id));

    assertThat(pipeline.run().waitUntilFinish(), equalTo(PipelineResult.State.DONE));
    assertThat(CollectingSink.collected(id), equalTo(List.of(SequenceSummary.exactlyOnce(1, count))));
  }

  /**
   * Scenario 2, live windowed aggregation: an unbounded read, fixed publish-time windows, counts
   * per subject written back to JetStream with {@code NatsIO.write()}. Every window's count
   * appears, including the last one, which only the idle watermark can close.
   */
  static void liveWindowedCounts(NatsTestServer server, Supplier<Pipeline> streamingPipeline) throws Exception {
    String clicks = "clicks_" + shortId();
    String counts = "counts_" + shortId();
    try (Connection connection = server.connect()) {
      createStream(connection, clicks, clicks + ".>");
      createStream(connection, counts, counts);
    }
    PipelineResult result = windowedCountsJob(streamingPipeline.get(),
        NatsIO.read().withServers(server.url()).withStream(clicks).withIdleWatermarkDelay(Duration.millis(500)), server, counts).run();
    try {
      try (Connection connection = server.connect()) {
        // Three subjects over about three seconds, so several windows; then the stream goes quiet.
        for (int batch = 0; batch < 6; batch++) {
          int size = 20 + batch * 7;
          publish(connection, i -> clicks + ".page" + (i % 3), size, JetStreamTestData::payload, i -> null);
          Thread.sleep(500);
        }
        Set<String> expected = expectedWindowCounts(connection.jetStreamManagement(), clicks);
        Set<String> actual = awaitPayloads(connection.jetStreamManagement(), counts, expected.size(), 90_000);
        Thread.sleep(1_500); // A late duplicate pane would show up here.
        actual = awaitPayloads(connection.jetStreamManagement(), counts, expected.size(), 0);
        assertThat(actual, equalTo(expected));
      }
    } finally {
      result.cancel();
    }
  }

  /**
   * Scenario 2 under steady traffic: windows close while messages keep arriving, not only once the
   * stream goes quiet. A publisher sends about 2,000 messages a second in bursts ({@link Pace#BURSTS});
   * while it still runs, every
   * window that ended two seconds before a cut-off must have been written back with its exact count
   * within 10 seconds. The idle watermark is set an hour back, so only the watermark from the
   * messages' publish times can close them.
   */
  static void windowsCloseWhileMessagesKeepArriving(NatsTestServer server, Supplier<Pipeline> streamingPipeline) throws Exception {
    windowsCloseWhileMessagesKeepArriving(server, streamingPipeline, Pace.BURSTS);
  }

  /** The same at {@code pace}. */
  static void windowsCloseWhileMessagesKeepArriving(NatsTestServer server, Supplier<Pipeline> streamingPipeline, Pace pace)
      throws Exception {
    String clicks = "steady_" + shortId();
    // An idle watermark an hour behind: only the publish times of the messages read can close windows.
    windowsCloseWhileMessagesKeepArriving(server, streamingPipeline, clicks,
        NatsIO.read().withServers(server.url()).withStream(clicks).withIdleWatermarkDelay(Duration.standardHours(1)),
        (i, round) -> clicks + ".page" + ((i + round) % 3), List.of(), pace);
  }

  /** How the traffic of the live-window scenarios arrives: one round every 100 ms. */
  enum Pace {
    /** 200 messages at once, then 100 ms of quiet: about 2,000 a second. */
    BURSTS {
      @Override
      void publishRound(Connection connection, SubjectOf subjectOf, int round) throws Exception {
        publish(connection, i -> subjectOf.subject(i, round), 200, JetStreamTestData::payload, i -> null);
        Thread.sleep(100);
      }
    },
    /**
     * One message every 5 ms, each waiting for its ack: about 200 a second with no gap a reader
     * could take for the end of its backlog (the rate a cluster job in FlinkClusterTest meets).
     */
    STEADY {
      @Override
      void publishRound(Connection connection, SubjectOf subjectOf, int round) throws Exception {
        for (int i = 0; i < 20; i++) {
          connection.jetStream().publish(subjectOf.subject(i, round), JetStreamTestData.payload(i));
          Thread.sleep(5);
        }
      }
    };

    abstract void publishRound(Connection connection, SubjectOf subjectOf, int round) throws Exception;
  }

  /** The same across 4 partitions, each getting a quarter of the traffic. */
  static void partitionedWindowsCloseWhileMessagesKeepArriving(NatsTestServer server, Supplier<Pipeline> streamingPipeline)
      throws Exception {
    String clicks = "parts_" + shortId();
    windowsCloseWhileMessagesKeepArriving(server, streamingPipeline, clicks, partitionedRead(server, clicks, Duration.standardHours(1)),
        (i, round) -> clicks + "." + (i % 4) + ".page" + ((i + round) % 3), List.of(), Pace.BURSTS);
  }

  /**
   * The same with 4 partitions of which one gets all the traffic: the other three hold one old
   * message each, so only their idle watermark (now less 1 s) lets windows close.
   */
  static void hotPartitionClosesWindowsWhileTheOthersAreQuiet(NatsTestServer server, Supplier<Pipeline> streamingPipeline)
      throws Exception {
    String clicks = "skew_" + shortId();
    windowsCloseWhileMessagesKeepArriving(server, streamingPipeline, clicks, partitionedRead(server, clicks, Duration.standardSeconds(1)),
        (i, round) -> clicks + ".0.page" + ((i + round) % 3), List.of(clicks + ".1.q", clicks + ".2.q", clicks + ".3.q"),
        Pace.BURSTS);
  }

  /** Partitions {@code stream.0.>} to {@code stream.3.>} of {@code stream}. */
  private static NatsIO.Read partitionedRead(NatsTestServer server, String stream, Duration idleWatermarkDelay) {
    return NatsIO.read().withServers(server.url()).withStream(stream)
        .withPartitions(stream + ".{{partition}}.>", 4).withIdleWatermarkDelay(idleWatermarkDelay);
  }

  /** Who gets message {@code i} of publishing round {@code round}. */
  interface SubjectOf {
    String subject(int i, int round);
  }

  /**
   * {@link #windowsCloseWhileMessagesKeepArriving(NatsTestServer, Supplier)} for any read of stream
   * {@code clicks} (subjects {@code clicks.>}): {@code quietSubjects} get one message each before
   * the steady traffic starts and none after, which goes to {@code subjectOf}.
   */
  static void windowsCloseWhileMessagesKeepArriving(NatsTestServer server, Supplier<Pipeline> streamingPipeline, String clicks,
      NatsIO.Read read, SubjectOf subjectOf, List<String> quietSubjects, Pace pace) throws Exception {
    String counts = "steady_counts_" + shortId();
    try (Connection connection = server.connect()) {
      createStream(connection, clicks, clicks + ".>");
      createStream(connection, counts, counts);
      for (String quiet : quietSubjects) {
        publish(connection, quiet, 1);
      }
    }
    PipelineResult result = windowedCountsJob(streamingPipeline.get(), read, server, counts).run();
    java.util.concurrent.atomic.AtomicBoolean publishing = new java.util.concurrent.atomic.AtomicBoolean(true);
    java.util.concurrent.CompletableFuture<Void> publisher = java.util.concurrent.CompletableFuture.runAsync(() -> {
      try (Connection connection = server.connect()) {
        long deadline = System.currentTimeMillis() + 120_000;
        for (int round = 0; publishing.get() && System.currentTimeMillis() < deadline; round++) {
          pace.publishRound(connection, subjectOf, round);
        }
      } catch (Exception e) {
        throw new java.util.concurrent.CompletionException(e);
      }
    });
    try (Connection connection = server.connect()) {
      JetStreamManagement jsm = connection.jetStreamManagement();
      Thread.sleep(6_000);
      long cutOff = System.currentTimeMillis() - 2_000;
      Set<String> expected = windowsEndingBy(expectedWindowCounts(jsm, clicks), cutOff);
      Set<String> actual = Set.of();
      long deadline = System.currentTimeMillis() + 10_000;
      while (!actual.equals(expected) && System.currentTimeMillis() < deadline) {
        Thread.sleep(200);
        actual = windowsEndingBy(payloadsSoFar(jsm, counts), cutOff);
      }
      assertThat("messages were still arriving", publisher.isDone(), equalTo(false));
      assertThat(actual, equalTo(expected));
    } finally {
      publishing.set(false);
      result.cancel();
    }
    publisher.join();
  }

  /** Unbounded read → fixed publish-time windows → count per subject → "subject,windowStart,count" written to {@code counts}. */
  private static Pipeline windowedCountsJob(Pipeline pipeline, NatsIO.Read read, NatsTestServer server, String counts) {
    pipeline
        .apply(read)
        .apply(Window.into(FixedWindows.of(WINDOW)))
        .apply(MapElements.into(TypeDescriptors.strings()).via(NatsMessage::getSubject))
        .apply(Count.perElement())
        .apply(ParDo.of(new WindowCountToMessage(counts)))
        .apply(NatsIO.write().withServers(server.url()).withJetStream().withMessageIdFn(NatsMessage::getPayloadAsString));
    return pipeline;
  }

  /** The "subject,windowStart,count" entries of windows that end by {@code cutOffMillis}. */
  private static Set<String> windowsEndingBy(Set<String> windowCounts, long cutOffMillis) {
    Set<String> ended = new java.util.TreeSet<>();
    for (String entry : windowCounts) {
      long start = Long.parseLong(entry.split(",")[1]);
      if (start + WINDOW.getMillis() <= cutOffMillis) {
        ended.add(entry);
      }
    }
    return ended;
  }

  /**
   * Scenario 3 on a runner without checkpoint restore (Direct): read A, transform, write B with
   * message ids; the job is cancelled mid-run and run again from the start. The second run replays
   * what the first wrote, and the stream's duplicate window drops the repeats: B ends with each
   * message exactly once.
   */
  static void effectivelyOnceAcrossARerun(NatsTestServer server, Supplier<Pipeline> streamingPipeline) throws Exception {
    int count = 3_000;
    String source = "rerun_a_" + shortId();
    String sink = "rerun_b_" + shortId();
    try (Connection connection = server.connect()) {
      createStream(connection, source, source + ".>");
      createStream(connection, sink, sink + ".>");
      publish(connection, source + ".x", count);
      JetStreamManagement jsm = connection.jetStreamManagement();

      PipelineResult first = copyJob(streamingPipeline.get(), server, source, sink, "rerun-first-" + UUID.randomUUID()).run();
      try {
        awaitCount(jsm, sink, 500);
      } finally {
        first.cancel();
      }
      long storedByFirstRun = jsm.getStreamInfo(sink).getStreamState().getMsgCount();
      assertThat("the first run was stopped mid-way", storedByFirstRun < count, equalTo(true));

      String secondRun = "rerun-second-" + UUID.randomUUID();
      PipelineResult second = copyJob(streamingPipeline.get(), server, source, sink, secondRun).run();
      try {
        awaitCount(jsm, sink, count);
        Thread.sleep(2_000); // Time for any extra, non-deduplicated message to land.
      } finally {
        second.cancel();
      }
      assertThat(jsm.getStreamInfo(sink).getStreamState().getMsgCount(), equalTo((long) count));
      Set<Long> copied = new java.util.TreeSet<>();
      for (long sequence = 1; sequence <= count; sequence++) {
        copied.add(Long.parseLong(jsm.getMessage(sink, sequence).getHeaders().getFirst("source-seq")));
      }
      assertThat(copied.size(), equalTo(count));
      long duplicates = CollectingSink.<dev.natsio.beam.NatsPublishResult>collected(secondRun).stream()
          .filter(dev.natsio.beam.NatsPublishResult::isDuplicate).count();
      assertThat("the rerun's repeats were dropped as duplicates", duplicates >= storedByFirstRun, equalTo(true));
    }
  }

  /** Read {@code source} → {@link SlowCopy} → write {@code sink} with message ids from the source sequence. */
  static Pipeline copyJob(Pipeline pipeline, NatsTestServer server, String source, String sink, String resultsId) {
    return copyJob(pipeline, server, NatsIO.read().withServers(server.url()).withStream(source), sink, resultsId);
  }

  /** {@link #copyJob(Pipeline, NatsTestServer, String, String, String)} with any read of the source. */
  static Pipeline copyJob(Pipeline pipeline, NatsTestServer server, NatsIO.Read read, String sink, String resultsId) {
    pipeline
        .apply("Read A", read)
        .apply("Transform", ParDo.of(new SlowCopy(sink + ".copy")))
        .apply("Write B", NatsIO.write().withServers(server.url()).withJetStream()
            .withMessageIdFn(m -> "source:" + m.getHeaders().get("source-seq").get(0)))
        .getPublishResults()
        .apply("Collect results", CollectingSink.into(resultsId));
    return pipeline;
  }

  /** The transform under test: upper-cases the payload, about 1 ms a message so a stop lands mid-run. */
  static final class SlowCopy extends DoFn<NatsMessage, NatsMessage> {
    private final String subject;

    SlowCopy(String subject) {
      this.subject = subject;
    }

    @ProcessElement
    public void process(@Element NatsMessage in, OutputReceiver<NatsMessage> out) throws InterruptedException {
      Thread.sleep(1);
      out.output(NatsMessage.create(
          subject,
          in.getPayloadAsString().toUpperCase().getBytes(StandardCharsets.UTF_8),
          Map.of("source-seq", List.of(String.valueOf(in.getSequence())))));
    }
  }

  static void awaitCount(JetStreamManagement jsm, String stream, long count) throws Exception {
    long deadline = System.currentTimeMillis() + 180_000;
    while (jsm.getStreamInfo(stream).getStreamState().getMsgCount() < count) {
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("stream " + stream + " holds " + jsm.getStreamInfo(stream).getStreamState().getMsgCount() + " of " + count);
      }
      Thread.sleep(200);
    }
  }

  /** "subject,windowStartMillis,count" for every window of the stream, computed from what the server stored. */
  static Set<String> expectedWindowCounts(JetStreamManagement jsm, String stream) throws Exception {
    long last = jsm.getStreamInfo(stream).getStreamState().getLastSequence();
    Map<String, Long> counts = new TreeMap<>();
    for (long sequence = 1; sequence <= last; sequence++) {
      MessageInfo message = jsm.getMessage(stream, sequence);
      long millis = message.getTime().toInstant().toEpochMilli();
      long windowStart = millis - Math.floorMod(millis, WINDOW.getMillis());
      counts.merge(message.getSubject() + "," + windowStart, 1L, Long::sum);
    }
    Set<String> expected = new HashSet<>();
    counts.forEach((key, count) -> expected.add(key + "," + count));
    return expected;
  }

  /** Waits until {@code stream} holds at least {@code count} messages and returns their payloads. */
  static Set<String> awaitPayloads(JetStreamManagement jsm, String stream, int count, long timeoutMillis) throws Exception {
    long deadline = System.currentTimeMillis() + timeoutMillis;
    while (jsm.getStreamInfo(stream).getStreamState().getMsgCount() < count && System.currentTimeMillis() < deadline) {
      Thread.sleep(200);
    }
    long last = jsm.getStreamInfo(stream).getStreamState().getLastSequence();
    Set<String> payloads = new HashSet<>();
    for (long sequence = 1; sequence <= last; sequence++) {
      payloads.add(new String(jsm.getMessage(stream, sequence).getData(), StandardCharsets.UTF_8));
    }
    assertThat("messages in " + stream, jsm.getStreamInfo(stream).getStreamState().getMsgCount(), equalTo((long) payloads.size()));
    return payloads;
  }

  /** The payloads {@code stream} holds now, while it may still grow; none may repeat (a duplicate pane). */
  private static Set<String> payloadsSoFar(JetStreamManagement jsm, String stream) throws Exception {
    long last = jsm.getStreamInfo(stream).getStreamState().getLastSequence();
    List<String> payloads = new java.util.ArrayList<>();
    for (long sequence = 1; sequence <= last; sequence++) {
      payloads.add(new String(jsm.getMessage(stream, sequence).getData(), StandardCharsets.UTF_8));
    }
    Set<String> distinct = new HashSet<>(payloads);
    assertThat("repeated payloads in " + stream + ": " + payloads, distinct.size(), equalTo(payloads.size()));
    return distinct;
  }

  static String shortId() {
    return UUID.randomUUID().toString().substring(0, 8);
  }

  /** Turns a (subject, count) of one window into the message written back. */
  static final class WindowCountToMessage extends DoFn<KV<String, Long>, NatsMessage> {
    private final String subject;

    WindowCountToMessage(String subject) {
      this.subject = subject;
    }

    @ProcessElement
    public void process(@Element KV<String, Long> count, BoundedWindow window, OutputReceiver<NatsMessage> out) {
      long start = ((IntervalWindow) window).start().getMillis();
      String payload = count.getKey() + "," + start + "," + count.getValue();
      out.output(NatsMessage.create(subject, payload.getBytes(StandardCharsets.UTF_8)));
    }
  }
}
