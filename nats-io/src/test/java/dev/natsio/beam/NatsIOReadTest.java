package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.is;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.JetStreamTestData;
import dev.natsio.beam.testing.NatsTestServer;
import dev.natsio.beam.testing.SequenceSummary;
import io.nats.client.Connection;
import io.nats.client.JetStreamManagement;
import io.nats.client.PurgeOptions;
import io.nats.client.api.RetentionPolicy;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import io.nats.client.impl.Headers;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.beam.sdk.Pipeline.PipelineExecutionException;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.io.range.OffsetRange;
import org.apache.beam.sdk.metrics.Lineage;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricQueryResults;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Instant;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;

/** Bounded JetStream reads on the Direct runner against a real nats-server. */
public class NatsIOReadTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  private final Connection connection = SERVER.sharedConnection();

  private NatsIO.Read read(String stream) {
    return NatsIO.read().withServers(SERVER.url()).withStream(stream);
  }

  private static PCollection<Long> sequences(PCollection<NatsMessage> messages) {
    return messages.apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence));
  }

  private static List<Long> range(long fromInclusive, long toExclusive) {
    return LongStream.range(fromInclusive, toExclusive).boxed().collect(Collectors.toList());
  }

  @Test
  public void boundedReadOutputsEveryMessageExactlyOnceWithSubjectPayloadAndHeaders() throws Exception {
    int count = 100_000;
    createStream(connection, "orders", "orders.>");
    publish(
        connection,
        i -> i % 2 == 0 ? "orders.eu" : "orders.us",
        count,
        JetStreamTestData::payload,
        i -> i % 10 == 0 ? new Headers().add("index", String.valueOf(i)).add("tag", "a", "b") : null);

    PCollection<Long> verified =
        pipeline.apply(read("orders").withStopAtEndOfStream().withSplitSize(10_000)).apply(ParDo.of(new VerifyPublishedFn("orders")));

    PAssert.thatSingleton(verified.apply(SequenceSummary.globally())).isEqualTo(SequenceSummary.exactlyOnce(1, count));
    pipeline.run().waitUntilFinish();
  }

  /** Checks each message against what the 100k test published for its sequence; outputs the sequence. */
  private static final class VerifyPublishedFn extends DoFn<NatsMessage, Long> {
    private final String stream;

    VerifyPublishedFn(String stream) {
      this.stream = stream;
    }

    @ProcessElement
    public void process(@Element NatsMessage message, OutputReceiver<Long> out) {
      int index = (int) message.getSequence() - 1;
      assertThat(message.getStream(), equalTo(stream));
      assertThat(message.getSubject(), equalTo(index % 2 == 0 ? "orders.eu" : "orders.us"));
      assertThat(message.getPayloadAsString(), equalTo("m" + index));
      if (index % 10 == 0) {
        assertThat(message.getHeaders().get("index"), equalTo(List.of(String.valueOf(index))));
        assertThat(message.getHeaders().get("tag"), equalTo(List.of("a", "b")));
      } else {
        assertThat(message.getHeaders().isEmpty(), is(true));
      }
      assertThat(message.getTimestamp() != null, is(true));
      out.output(message.getSequence());
    }
  }

  @Test
  public void readSplitIntoManySmallPiecesStillReadsEachMessageOnce() throws Exception {
    createStream(connection, "pieces", "pieces.>");
    publish(connection, "pieces.x", 5_000);

    PCollection<NatsMessage> messages = pipeline.apply(read("pieces").withStopAtEndOfStream().withSplitSize(97));

    PAssert.that(sequences(messages)).containsInAnyOrder(range(1, 5_001));
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void startAndStopSequencesBoundTheRangeWithExclusiveStop() throws Exception {
    createStream(connection, "bysequence", "bysequence.>");
    publish(connection, "bysequence.x", 100);

    PCollection<NatsMessage> messages = pipeline.apply(read("bysequence").withStartSequence(11).withStopSequence(21));

    PAssert.that(sequences(messages)).containsInAnyOrder(range(11, 21));
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void startAndStopTimesSelectMessagesStoredBetweenThem() throws Exception {
    createStream(connection, "bytime", "bytime.>");
    publish(connection, "bytime.x", 30);
    Thread.sleep(50);
    Instant start = Instant.now();
    Thread.sleep(50);
    publish(connection, "bytime.x", 40);
    Thread.sleep(50);
    Instant stop = Instant.now();
    Thread.sleep(50);
    publish(connection, "bytime.x", 30);

    PCollection<NatsMessage> messages = pipeline.apply(read("bytime").withStartTime(start).withStopTime(stop));

    PAssert.that(sequences(messages)).containsInAnyOrder(range(31, 71));
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void stopTimeInThePastWithNothingAfterItReadsToTheEnd() throws Exception {
    createStream(connection, "pasttime", "pasttime.>");
    publish(connection, "pasttime.x", 25);
    Thread.sleep(20);

    PCollection<NatsMessage> messages = pipeline.apply(read("pasttime").withStopTime(Instant.now()));

    PAssert.that(sequences(messages)).containsInAnyOrder(range(1, 26));
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void filterSubjectsReadOnlyMatchingMessagesAcrossTheGaps() throws Exception {
    createStream(connection, "filtered", "filtered.>");
    publish(connection, i -> i % 3 == 0 ? "filtered.keep" : "filtered.skip", 3_000, JetStreamTestData::payload, i -> null);

    PCollection<NatsMessage> messages =
        pipeline.apply(read("filtered").withFilterSubjects("filtered.keep").withStopAtEndOfStream().withSplitSize(500));

    List<Long> expected = new ArrayList<>();
    for (long sequence = 1; sequence <= 3_000; sequence += 3) {
      expected.add(sequence);
    }
    PAssert.that(sequences(messages)).containsInAnyOrder(expected);
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void deletedAndPurgedMessagesInsideTheRangeAreSkippedWithoutStalling() throws Exception {
    createStream(connection, "holes", "holes.>");
    publish(connection, i -> i < 100 ? "holes.a" : "holes.b", 300, JetStreamTestData::payload, i -> null);
    JetStreamManagement jsm = connection.jetStreamManagement();
    Set<Long> deleted = new TreeSet<>(List.of(150L, 151L, 152L, 299L, 300L));
    for (long sequence : deleted) {
      jsm.deleteMessage("holes", sequence);
    }
    jsm.purgeStream("holes", PurgeOptions.subject("holes.a")); // Removes sequences 1..100.

    PCollection<NatsMessage> messages = pipeline.apply(read("holes").withStartSequence(1).withStopSequence(301).withSplitSize(40));

    List<Long> expected = range(101, 301).stream().filter(s -> !deleted.contains(s)).collect(Collectors.toList());
    PAssert.that(sequences(messages)).containsInAnyOrder(expected);
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void emptyStreamReadToItsEndFinishesWithNothing() throws Exception {
    createStream(connection, "empty", "empty.>");

    PCollection<Long> count = pipeline.apply(read("empty").withStopAtEndOfStream()).apply(Count.globally());

    PAssert.thatSingleton(count).isEqualTo(0L);
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void stopSequenceBeyondTheEndWaitsForMessagesStillToBePublished() throws Exception {
    createStream(connection, "future", "future.>");
    publish(connection, "future.x", 10);
    Thread publisher =
        new Thread(() -> {
          try {
            Thread.sleep(1_500);
            publish(connection, "future.x", 10);
          } catch (Exception e) {
            throw new RuntimeException(e);
          }
        });
    publisher.start();

    PCollection<NatsMessage> messages = pipeline.apply(read("future").withStopSequence(16));

    PAssert.that(sequences(messages)).containsInAnyOrder(range(1, 16));
    pipeline.run().waitUntilFinish();
    publisher.join();
  }

  @Test
  public void resumedBundlesReuseTheParkedReader() throws Exception {
    createStream(connection, "reuse", "reuse.>");
    publish(connection, "reuse.x", 3_000);
    long openedBefore = JetStreamReader.OPENED.get();

    // The Direct runner checkpoints every 100 outputs: 30 resumptions of one restriction.
    PCollection<Long> count = pipeline.apply(read("reuse").withStopAtEndOfStream()).apply(Count.globally());

    PAssert.thatSingleton(count).isEqualTo(3_000L);
    pipeline.run().waitUntilFinish();
    assertThat(JetStreamReader.OPENED.get() - openedBefore, equalTo(1L));
  }

  @Test
  public void missingStreamFailsWithAnErrorNamingItAndTheServer() {
    pipeline.apply(read("no_such_stream").withStopAtEndOfStream());

    PipelineExecutionException error = assertThrows(PipelineExecutionException.class, () -> pipeline.run().waitUntilFinish());
    assertThat(error.getCause().getMessage(), containsString("stream 'no_such_stream' does not exist on " + SERVER.url()));
  }

  @Test
  public void workQueueStreamIsRefusedWithAPointerToAckingConsumers() throws Exception {
    createStream(connection,
        StreamConfiguration.builder().name("jobs").subjects("jobs.>").retentionPolicy(RetentionPolicy.WorkQueue).storageType(StorageType.File).build());
    publish(connection, "jobs.x", 5);
    pipeline.apply(read("jobs").withStopAtEndOfStream());

    PipelineExecutionException error = assertThrows(PipelineExecutionException.class, () -> pipeline.run().waitUntilFinish());
    assertThat(error.getCause().getMessage(), containsString("'jobs'"));
    assertThat(error.getCause().getMessage(), containsString("work-queue"));
    assertThat(connection.jetStreamManagement().getStreamInfo("jobs").getStreamState().getMsgCount(), equalTo(5L));
  }

  @Test
  public void finishedReadLeavesNoConsumerOnTheServer() throws Exception {
    createStream(connection, "tidy", "tidy.>");
    publish(connection, "tidy.x", 2_000);

    PCollection<Long> count = pipeline.apply(read("tidy").withStopAtEndOfStream().withSplitSize(300)).apply(Count.globally());
    PAssert.thatSingleton(count).isEqualTo(2_000L);
    pipeline.run().waitUntilFinish();

    // Readers parked for reuse are closed at teardown or by the idle sweep; each close deletes its consumer.
    long deadline = System.currentTimeMillis() + JetStreamReader.IDLE_TIMEOUT_MILLIS + 15_000;
    List<String> consumers = connection.jetStreamManagement().getConsumerNames("tidy");
    while (!consumers.isEmpty() && System.currentTimeMillis() < deadline) {
      Thread.sleep(200);
      consumers = connection.jetStreamManagement().getConsumerNames("tidy");
    }
    assertThat(consumers, empty());
  }

  @Test
  public void readReportsMessageAndByteCountersAndLineage() throws Exception {
    createStream(connection, "metered", "metered.>");
    publish(connection, "metered.x", 1_000); // Payloads "m0".."m999": 10×2 + 90×3 + 900×4 = 3,890 bytes.
    pipeline.apply(read("metered").withStopAtEndOfStream().withSplitSize(300));

    PipelineResult result = pipeline.run();
    result.waitUntilFinish();

    assertThat(counter(result, "messagesRead/metered"), equalTo(1_000L));
    assertThat(counter(result, "bytesRead/metered"), equalTo(3_890L));
    assertThat(Lineage.query(result.metrics(), Lineage.Type.SOURCE).toString(), containsString("metered"));
  }

  @Test
  public void parallelSplitsShareOneConnectionPerConfiguration() throws Exception {
    createStream(connection, "shared", "shared.>");
    publish(connection, "shared.x", 4_000);
    String name = "natsio-shared-splits";
    NatsIO.Read read = NatsIO.read()
        .withConnectionConfiguration(NatsIO.ConnectionConfiguration.create(SERVER.url()).withConnectionName(name))
        .withStream("shared").withStopAtEndOfStream().withSplitSize(200);
    PCollection<Long> count = pipeline.apply(read).apply(Count.globally());
    PAssert.thatSingleton(count).isEqualTo(4_000L);
    // The server's own view, polled while the 20 splits are read: connections under the read's name.
    java.util.concurrent.atomic.AtomicInteger most = new java.util.concurrent.atomic.AtomicInteger();
    java.util.concurrent.atomic.AtomicBoolean running = new java.util.concurrent.atomic.AtomicBoolean(true);
    Thread watcher = new Thread(() -> {
      java.util.regex.Pattern named = java.util.regex.Pattern.compile("\"name\":\\s*\"" + name + "\"");
      while (running.get()) {
        most.accumulateAndGet((int) named.matcher(SERVER.monitoring("/connz?limit=1024")).results().count(), Math::max);
        try {
          Thread.sleep(20); // Polling interval of the watcher.
        } catch (InterruptedException e) {
          return;
        }
      }
    });
    watcher.start();
    try {
      pipeline.run().waitUntilFinish();
    } finally {
      running.set(false);
      watcher.join();
    }

    assertThat(most.get(), equalTo(1));
  }

  private static long counter(PipelineResult result, String name) {
    MetricQueryResults metrics =
        result.metrics().queryMetrics(MetricsFilter.builder().addNameFilter(MetricNameFilter.named("NatsIO", name)).build());
    long total = 0;
    for (MetricResult<Long> counter : metrics.getCounters()) {
      total += counter.getAttempted();
    }
    return total;
  }

  @Test
  public void sizeIsRemainingSequencesTimesAverageMessageBytes() throws Exception {
    createStream(connection, "sized", "sized.>");
    publish(connection, "sized.x", 100);
    long streamBytes = connection.jetStreamManagement().getStreamInfo("sized").getStreamState().getByteCount();
    ReadFromJetStreamDoFn fn = ReadFromJetStreamDoFn.create(read("sized").withStopAtEndOfStream().toReadSourceDescriptors());
    NatsSourceDescriptor descriptor = NatsSourceDescriptor.of("sized").withStopAtEndOfStream();
    try {
      assertThat(fn.initialRestriction(descriptor), equalTo(LimitedOffsetRange.unlimited(new OffsetRange(1, 101))));
      assertThat(fn.getSize(descriptor, LimitedOffsetRange.unlimited(new OffsetRange(51, 101))), equalTo(streamBytes / 2.0));
    } finally {
      fn.teardown();
    }
  }

  @Test
  public void messagesConvertToRowsThroughTheirSchema() throws Exception {
    createStream(connection, "rows", "rows.>");
    publish(connection, "rows.a", 3);

    PCollection<String> subjects =
        pipeline.apply(read("rows").withStopAtEndOfStream())
            .apply(org.apache.beam.sdk.schemas.transforms.Convert.toRows())
            .apply(MapElements.into(TypeDescriptors.strings()).via(row -> row.getString("subject") + "#" + row.getInt64("sequence")));

    PAssert.that(subjects).containsInAnyOrder("rows.a#1", "rows.a#2", "rows.a#3");
    pipeline.run().waitUntilFinish();
  }

  static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }
}
