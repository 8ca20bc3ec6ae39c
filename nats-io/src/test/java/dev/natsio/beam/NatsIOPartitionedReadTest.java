package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.fail;

import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.JetStreamTestData;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Collectors;
import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.io.UnboundedSource.UnboundedReader;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Duration;
import org.joda.time.Instant;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;

/**
 * Partitioned stream reads ({@link StreamPartitions}): each filter subject read as its own
 * partition, on the Direct runner and through the Flink source's splits, against a real
 * nats-server 2.9.10, which allows one filter per consumer.
 */
public class NatsIOPartitionedReadTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  private static final PipelineOptions OPTIONS = PipelineOptionsFactory.create();
  private final Connection connection = SERVER.sharedConnection();

  private static NatsIO.Read read(String stream) {
    return NatsIO.read().withServers(SERVER.url()).withStream(stream);
  }

  /** Publishes {@code count} messages, message i to partition i mod 4: "{stream}.{i mod 4}.k{i}". */
  private void publishOverFourPartitions(String stream, int count) throws Exception {
    publish(connection, i -> stream + "." + (i % 4) + ".k" + i, count, JetStreamTestData::payload, i -> null);
  }

  @Test
  public void boundedReadOfFourFilterSubjectsReadsEachMessageOnceOnAServerThatAllowsOneFilterPerConsumer() throws Exception {
    createStream(connection, "parts", "parts.>");
    publishOverFourPartitions("parts", 2_000);
    publish(connection, "parts.other", 100); // Matches no filter.

    PCollection<NatsMessage> messages = pipeline.apply(
        read("parts").withFilterSubjects("parts.0.>", "parts.1.>", "parts.2.>", "parts.3.>").withStopAtEndOfStream().withSplitSize(300));

    List<Long> expected = new ArrayList<>();
    for (long sequence = 1; sequence <= 2_000; sequence++) {
      expected.add(sequence);
    }
    PAssert.that(messages.apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))).containsInAnyOrder(expected);
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void liveReadOfPartitionsOnDirectReadsEachPartitionsMessagesOnceEach() throws Exception {
    createStream(connection, "liveparts", "liveparts.>");
    String id = "liveparts-" + UUID.randomUUID();
    DirectOptions options = PipelineOptionsFactory.create().as(DirectOptions.class);
    options.setBlockOnRun(false);
    Pipeline live = Pipeline.create(options);
    live.apply(read("liveparts").withPartitions("liveparts.{{partition}}.>", 4))
        .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
        .apply(CollectingSink.into(id));
    PipelineResult result = live.run();
    try {
      publishOverFourPartitions("liveparts", 800);
      CollectingSink.<Long>await(id, seen -> seen.size() >= 800, 60_000);
      // One more message per partition (sequences 801-804): each partition is read in order, so a
      // duplicate of an earlier message would be output before its partition's marker.
      publishOverFourPartitions("liveparts", 4);
      CollectingSink.<Long>await(id, seen -> seen.containsAll(List.of(801L, 802L, 803L, 804L)), 60_000);
    } finally {
      result.cancel();
    }
    List<Long> seen = CollectingSink.<Long>collected(id).stream().sorted().collect(Collectors.toList());
    List<Long> expected = new ArrayList<>();
    for (long sequence = 1; sequence <= 804; sequence++) {
      expected.add(sequence);
    }
    assertThat(seen, equalTo(expected));
  }

  @Test
  public void unboundedSourceSplitsIntoOneSplitPerFilterSubjectEachWithThatFilterAlone() throws Exception {
    NatsIO.Read read = read("splits").withFilterSubjects("splits.0.>", "splits.1.>", "splits.2.>");
    JetStreamUnboundedSource source = new JetStreamUnboundedSource(read.toReadSourceDescriptors(), read.toDescriptor());

    List<List<String>> filters = source.split(2, OPTIONS).stream()
        .map(split -> split.getDescriptor().getFilterSubjects())
        .collect(Collectors.toList());

    assertThat(filters, equalTo(List.of(List.of("splits.0.>"), List.of("splits.1.>"), List.of("splits.2.>"))));
  }

  @Test
  public void splitsReadWithoutWaitingOnlyWhenThereAreMoreThanTheRunnerAskedFor() throws Exception {
    NatsIO.Read read = read("shared").withPartitions("shared.{{partition}}.>", 4);
    JetStreamUnboundedSource source = new JetStreamUnboundedSource(read.toReadSourceDescriptors(), read.toDescriptor());

    assertThat(source.split(2, OPTIONS).stream().map(JetStreamUnboundedSource::sharesTask).collect(Collectors.toList()),
        equalTo(List.of(true, true, true, true)));
    assertThat(source.split(4, OPTIONS).stream().map(JetStreamUnboundedSource::sharesTask).collect(Collectors.toList()),
        equalTo(List.of(false, false, false, false)));
  }

  @Test
  public void eachSplitReadsOnlyItsPartitionAndItsCheckpointMarkHoldsItsOwnNextSequence() throws Exception {
    createStream(connection, "splitread", "splitread.>");
    publishOverFourPartitions("splitread", 40);
    NatsIO.Read read = read("splitread").withPartitions("splitread.{{partition}}.>", 4);
    List<JetStreamUnboundedSource> splits =
        new JetStreamUnboundedSource(read.toReadSourceDescriptors(), read.toDescriptor()).split(4, OPTIONS);

    for (int partition = 0; partition < 4; partition++) {
      try (UnboundedReader<NatsMessage> reader = splits.get(partition).createReader(OPTIONS, null)) {
        List<Long> sequences = new ArrayList<>();
        long deadline = System.currentTimeMillis() + 20_000;
        boolean available = reader.start();
        while (sequences.size() < 5) {
          if (available) {
            sequences.add(reader.getCurrent().getSequence());
          }
          if (System.currentTimeMillis() > deadline) {
            fail("Partition " + partition + " read " + sequences + " within 20 s");
          }
          available = sequences.size() < 5 && reader.advance();
        }
        // Message i (sequence i + 1) is in partition i mod 4.
        List<Long> expected = new ArrayList<>();
        for (long i = partition; expected.size() < 5; i += 4) {
          expected.add(i + 1);
        }
        assertThat(sequences, equalTo(expected));
        assertThat(((JetStreamCheckpointMark) reader.getCheckpointMark()).getNextSequence(), equalTo(expected.get(4) + 1));
      }
    }
  }

  @Test
  public void quietPartitionsAdvanceTheirWatermarkWhileAnotherPartitionKeepsReceiving() throws Exception {
    createStream(connection, "skew", "skew.>");
    publishOverFourPartitions("skew", 4); // One message in each partition; then only partition 0 gets traffic.
    Instant quietSince = Instant.now();
    NatsIO.Read read = read("skew").withPartitions("skew.{{partition}}.>", 4).withIdleWatermarkDelay(Duration.millis(200));
    List<JetStreamUnboundedSource> splits =
        new JetStreamUnboundedSource(read.toReadSourceDescriptors(), read.toDescriptor()).split(4, OPTIONS);
    AtomicBoolean publishing = new AtomicBoolean(true);
    CompletableFuture<Void> hot = CompletableFuture.runAsync(() -> {
      try {
        for (int round = 0; publishing.get() && round < 600; round++) {
          publish(connection, "skew.0.hot", 20);
          Thread.sleep(50);
        }
      } catch (Exception e) {
        throw new java.util.concurrent.CompletionException(e);
      }
    });
    List<UnboundedReader<NatsMessage>> readers = new ArrayList<>();
    try {
      for (JetStreamUnboundedSource split : splits) {
        UnboundedReader<NatsMessage> reader = split.createReader(OPTIONS, null);
        readers.add(reader);
        reader.start();
      }
      // Read all four in turn, as a runner's subtask does, until every quiet partition's watermark
      // has passed the moment the quiet partitions got their last message, while the hot one runs.
      long deadline = System.currentTimeMillis() + 30_000;
      Map<Integer, Instant> watermarks = new TreeMap<>();
      while (true) {
        for (int partition = 0; partition < 4; partition++) {
          readers.get(partition).advance();
          watermarks.put(partition, readers.get(partition).getWatermark());
        }
        boolean quietOnesMoved = watermarks.get(1).isAfter(quietSince)
            && watermarks.get(2).isAfter(quietSince) && watermarks.get(3).isAfter(quietSince);
        if (quietOnesMoved) {
          break;
        }
        if (System.currentTimeMillis() > deadline) {
          fail("Quiet partitions' watermarks stayed behind " + quietSince + ": " + watermarks);
        }
      }
      assertThat("the hot partition was still receiving", hot.isDone(), equalTo(false));
    } finally {
      publishing.set(false);
      for (UnboundedReader<NatsMessage> reader : readers) {
        reader.close();
      }
    }
    hot.join();
  }

  @Test
  public void withPartitionsNamesOneFilterSubjectPerPartitionNumberFromZero() {
    NatsIO.Read read = read("named").withPartitions("orders.{{partition}}.>", 4);

    assertThat(read.toDescriptor().getFilterSubjects(), equalTo(List.of("orders.0.>", "orders.1.>", "orders.2.>", "orders.3.>")));
  }

  @Test
  public void withPartitionsWithoutAWholePartitionTokenIsRefusedSayingWhereTheTokenGoes() {
    IllegalArgumentException missing =
        assertThrows(IllegalArgumentException.class, () -> read("named").withPartitions("orders.*.>", 4));
    IllegalArgumentException inside =
        assertThrows(IllegalArgumentException.class, () -> read("named").withPartitions("orders.p{{partition}}.>", 4));

    assertThat(missing.getMessage(), containsString("{{partition}} token"));
    assertThat(inside.getMessage(), containsString("whole subject token"));
  }

  @Test
  public void withPartitionsOfZeroPartitionsIsRefused() {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> read("named").withPartitions("orders.{{partition}}.>", 0));

    assertThat(e.getMessage(), containsString("at least 1"));
  }

  @Test
  public void overlappingFilterSubjectsAreRefusedNamingBoth() {
    Pipeline p = Pipeline.create(PipelineOptionsFactory.create());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> p.apply(read("overlap").withFilterSubjects("orders.0.>", "orders.*.eu").withStopAtEndOfStream()));

    assertThat(e.getMessage(), containsString("'orders.0.>' and 'orders.*.eu'"));
  }

  @Test
  public void disjointFilterSubjectsWithWildcardsAreAccepted() {
    Pipeline p = Pipeline.create(PipelineOptionsFactory.create());

    p.apply(read("disjoint").withFilterSubjects("orders.0.>", "orders.1.*", "orders.*", "audit.>").withStopAtEndOfStream());
  }
}
