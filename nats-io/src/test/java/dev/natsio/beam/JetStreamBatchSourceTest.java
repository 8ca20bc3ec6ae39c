package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.lessThanOrEqualTo;

import dev.natsio.beam.testing.JetStreamTestData;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.impl.Headers;
import java.io.Closeable;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.beam.runners.core.metrics.MetricsContainerImpl;
import org.apache.beam.sdk.io.UnboundedSource.UnboundedReader;
import org.apache.beam.sdk.metrics.MetricName;
import org.apache.beam.sdk.metrics.MetricsEnvironment;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.testing.CoderProperties;
import org.apache.beam.sdk.transforms.DoFnTester;
import org.apache.beam.sdk.util.CoderUtils;
import org.apache.beam.sdk.values.TimestampedValue;
import org.joda.time.Instant;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * {@link JetStreamBatchSource} and {@link NatsMessageBatch} against a real nats-server: batches hold
 * what the consumer has buffered, in order, with exact positions between them, and survive their
 * coder (the clone Flink makes between chained operators) with every field and timestamp.
 */
public class JetStreamBatchSourceTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  private static final PipelineOptions OPTIONS = PipelineOptionsFactory.create();
  private static final long READ_TIMEOUT_MILLIS = 20_000;

  private final Connection connection = SERVER.sharedConnection();

  @Test
  public void aBacklogIsReadInBatchesOfSeveralMessagesEachInSequenceOrder() throws Exception {
    createStream(connection, "backlog", "backlog.>");
    publish(connection, "backlog.x", 5_000);

    try (UnboundedReader<NatsMessageBatch> reader = source(read("backlog")).createReader(OPTIONS, null)) {
      List<Long> sequences = new ArrayList<>();
      int batches = 0;
      boolean available = reader.start();
      while (sequences.size() < 5_000) {
        if (available) {
          NatsMessageBatch batch = reader.getCurrent();
          assertThat(batch.size(), lessThanOrEqualTo(JetStreamBatchSource.MAX_MESSAGES));
          batch.messages().forEach(m -> sequences.add(m.getSequence()));
          batches++;
        }
        available = sequences.size() < 5_000 && advanceWithin(reader);
      }
      assertThat(sequences, equalTo(range(1, 5_000)));
      assertThat("5,000 messages came in " + batches + " batches", batches * 10, lessThanOrEqualTo(5_000));
    }
  }

  @Test
  public void theCheckpointMarkAfterABatchResumesAtTheMessageAfterItsLast() throws Exception {
    createStream(connection, "batchresume", "batchresume.>");
    publish(connection, "batchresume.x", 3_000);
    JetStreamBatchSource source = source(read("batchresume"));

    List<Long> sequences = new ArrayList<>();
    JetStreamCheckpointMark mark;
    try (UnboundedReader<NatsMessageBatch> first = source.createReader(OPTIONS, null)) {
      boolean available = first.start() || advanceWithin(first);
      for (int i = 0; i < 2 && available; i++) { // Two batches, then a checkpoint.
        for (NatsMessage message : first.getCurrent().messages()) {
          sequences.add(message.getSequence());
        }
        available = i == 0 && advanceWithin(first);
      }
      mark = CoderUtils.clone(source.getCheckpointMarkCoder(), (JetStreamCheckpointMark) first.getCheckpointMark());
    }
    assertThat(mark.getNextSequence(), equalTo(sequences.get(sequences.size() - 1) + 1));

    try (UnboundedReader<NatsMessageBatch> second = source.createReader(OPTIONS, mark)) {
      boolean available = second.start() || advanceWithin(second);
      while (available) {
        for (NatsMessage message : second.getCurrent().messages()) {
          sequences.add(message.getSequence());
        }
        available = sequences.size() < 3_000 && advanceWithin(second);
      }
    }
    assertThat(sequences, equalTo(range(1, 3_000)));
  }

  @Test
  public void aBatchTimestampIsItsEarliestMessagesAndTheWatermarkFollowsItsLast() throws Exception {
    createStream(connection, "batchtimes", "batchtimes.>");
    publish(connection, "batchtimes.x", 200);

    try (UnboundedReader<NatsMessageBatch> reader = source(read("batchtimes")).createReader(OPTIONS, null)) {
      boolean available = reader.start() || advanceWithin(reader);
      NatsMessageBatch batch = reader.getCurrent();
      assertThat(available && batch.size() > 0, equalTo(true));
      List<NatsMessage> messages = batch.messages();
      for (int i = 0; i < batch.size(); i++) {
        assertThat(batch.timestamp(i), equalTo(messages.get(i).getTimestamp()));
      }
      assertThat(reader.getCurrentTimestamp(), equalTo(messages.get(0).getTimestamp()));
      assertThat(reader.getWatermark(), equalTo(messages.get(messages.size() - 1).getTimestamp()));
    }
  }

  @Test
  public void aBatchThroughItsCoderKeepsEveryFieldAndTimestamp() throws Exception {
    List<NatsMessage> messages = List.of(
        NatsMessage.of("a.b", new byte[] {1, 2, 3}, Map.of("k", List.of("v1", "v2")), "S", 7, Instant.ofEpochMilli(1_000), 0),
        NatsMessage.of("a.c", new byte[0], Map.of(), null, 8, null, 3),
        NatsMessage.of("a.d", "x".getBytes(java.nio.charset.StandardCharsets.UTF_8), Map.of(), "S", 9, Instant.ofEpochMilli(900), 0));
    NatsMessageBatch batch = new NatsMessageBatch(messages, new long[] {1_000, 5, 900});

    NatsMessageBatch once = CoderUtils.clone(NatsMessageBatch.Coder.of(), batch);
    NatsMessageBatch twice = CoderUtils.clone(NatsMessageBatch.Coder.of(), once); // Copied as encoded.

    for (NatsMessageBatch copy : List.of(once, twice)) {
      assertThat(copy.messages(), equalTo(messages));
      assertThat(List.of(copy.timestamp(0), copy.timestamp(1), copy.timestamp(2)),
          equalTo(List.of(Instant.ofEpochMilli(1_000), Instant.ofEpochMilli(5), Instant.ofEpochMilli(900))));
    }
    CoderProperties.coderSerializable(NatsMessageBatch.Coder.of());
  }

  @Test
  public void unbatchOutputsEachMessageWithItsOwnTimestamp() throws Exception {
    List<NatsMessage> messages = List.of(
        NatsMessage.of("a", new byte[] {1}, Map.of(), "S", 1, Instant.ofEpochMilli(10), 0),
        NatsMessage.of("b", new byte[] {2}, Map.of(), "S", 2, Instant.ofEpochMilli(30), 0));
    NatsMessageBatch batch = CoderUtils.clone(NatsMessageBatch.Coder.of(), new NatsMessageBatch(messages, new long[] {10, 30}));

    @SuppressWarnings("deprecation")
    DoFnTester<NatsMessageBatch, NatsMessage> tester = DoFnTester.of(new NatsMessageBatch.Unbatch());
    tester.processTimestampedElement(TimestampedValue.of(batch, Instant.ofEpochMilli(10)));

    assertThat(tester.peekOutputElementsWithTimestamp(), equalTo(List.of(
        TimestampedValue.of(messages.get(0), Instant.ofEpochMilli(10)),
        TimestampedValue.of(messages.get(1), Instant.ofEpochMilli(30)))));
  }

  @Test
  public void aQuietStreamIsReadOneMessageAtATimeWithoutWaitingForABatch() throws Exception {
    createStream(connection, "trickle", "trickle.>");
    try (UnboundedReader<NatsMessageBatch> reader = source(read("trickle")).createReader(OPTIONS, null)) {
      boolean available = reader.start();
      for (int i = 1; i <= 3; i++) {
        publish(connection, "trickle.x", 1);
        if (!available) {
          available = advanceWithin(reader);
        }
        assertThat(reader.getCurrent().size(), equalTo(1));
        assertThat(reader.getCurrent().messages().get(0).getSequence(), equalTo((long) i));
        available = false;
      }
    }
  }

  @Test
  public void headersAndSubjectsOfRealMessagesSurviveTheBatchCoder() throws Exception {
    createStream(connection, "batchfields", "batchfields.>");
    publish(connection, i -> "batchfields." + (i % 3), 30, JetStreamTestData::payload,
        i -> i % 4 == 0 ? new Headers().add("index", String.valueOf(i)) : null);

    List<NatsMessage> read = new ArrayList<>();
    List<NatsMessage> cloned = new ArrayList<>();
    try (UnboundedReader<NatsMessageBatch> reader = source(read("batchfields")).createReader(OPTIONS, null)) {
      boolean available = reader.start() || advanceWithin(reader);
      while (available) {
        read.addAll(reader.getCurrent().messages());
        cloned.addAll(CoderUtils.clone(NatsMessageBatch.Coder.of(), reader.getCurrent()).messages());
        available = read.size() < 30 && advanceWithin(reader);
      }
    }
    assertThat(read.size(), equalTo(30));
    assertThat(cloned, equalTo(read));
    assertThat(read.get(4).getHeaders(), equalTo(Map.of("index", List.of("4"))));
    assertThat(read.stream().map(NatsMessage::getSubject).distinct().count(), greaterThan(2L));
  }

  @Test
  public void eachBatchAddsAllItsMessagesAndBytesToTheReadCountersByTheTimeItIsReturned() throws Exception {
    createStream(connection, "batchcount", "batchcount.>");
    publish(connection, "batchcount.x", 1_000); // Payloads "m0".."m999": 10×2 + 90×3 + 900×4 = 3,890 bytes.

    MetricsContainerImpl container = new MetricsContainerImpl("read");
    long messages = 0;
    long bytes = 0;
    try (Closeable scope = MetricsEnvironment.scopedMetricsContainer(container);
        UnboundedReader<NatsMessageBatch> reader = source(read("batchcount")).createReader(OPTIONS, null)) {
      boolean available = reader.start() || advanceWithin(reader);
      while (available) {
        for (NatsMessage message : reader.getCurrent().messages()) {
          messages++;
          bytes += message.getPayload().length;
        }
        assertThat(counter(container, "messagesRead/batchcount"), equalTo(messages));
        assertThat(counter(container, "bytesRead/batchcount"), equalTo(bytes));
        available = messages < 1_000 && advanceWithin(reader);
      }
    }
    assertThat(counter(container, "messagesRead"), equalTo(1_000L));
    assertThat(counter(container, "bytesRead"), equalTo(3_890L));
  }

  // ---- Helpers ---------------------------------------------------------------------------------

  private static NatsIO.Read read(String stream) {
    return NatsIO.read().withServers(SERVER.url()).withStream(stream);
  }

  private static JetStreamBatchSource source(NatsIO.Read read) {
    return new JetStreamBatchSource(new JetStreamUnboundedSource(read.toReadSourceDescriptors(), read.toDescriptor()));
  }

  private static boolean advanceWithin(UnboundedReader<NatsMessageBatch> reader) throws IOException {
    return JetStreamUnboundedSourceTest.advanceWithin(reader, READ_TIMEOUT_MILLIS);
  }

  private static long counter(MetricsContainerImpl container, String name) {
    return container.getCounter(MetricName.named(JetStreamReadMetrics.NAMESPACE, name)).getCumulative();
  }

  private static List<Long> range(long fromInclusive, long toInclusive) {
    return LongStream.rangeClosed(fromInclusive, toInclusive).boxed().collect(Collectors.toList());
  }
}
