package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.lessThan;

import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.beam.sdk.io.range.OffsetRange;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.splittabledofn.OffsetRangeTracker;
import org.apache.beam.sdk.transforms.splittabledofn.SplitResult;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.apache.beam.sdk.util.CoderUtils;
import org.joda.time.Duration;
import org.joda.time.Instant;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;

/** {@code withMaxNumRecords} and {@code withMaxReadTime} on JetStream reads, and the budget's restriction. */
public class NatsIOReadLimitsTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  private final Connection connection = SERVER.sharedConnection();

  private static PCollection<Long> sequences(PCollection<NatsMessage> messages) {
    return messages.apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence));
  }

  @Test
  public void maxNumRecordsBoundsAStreamReadWithoutAStopToTheFirstMessages() throws Exception {
    createStream(connection, "limited", "limited.>");
    publish(connection, "limited.x", 500);

    // 250 outputs span several Direct-runner checkpoints (every 100): the budget must survive them.
    PCollection<NatsMessage> messages = pipeline.apply(NatsIO.read().withServers(SERVER.url()).withStream("limited").withMaxNumRecords(250));

    PAssert.that(sequences(messages)).containsInAnyOrder(LongStream.rangeClosed(1, 250).boxed().collect(Collectors.toList()));
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void maxReadTimeEndsALiveStreamReadAfterReadingWhatIsThere() throws Exception {
    createStream(connection, "timed", "timed.>");
    publish(connection, "timed.x", 50);
    long start = System.currentTimeMillis();

    PCollection<Long> count =
        pipeline.apply(NatsIO.read().withServers(SERVER.url()).withStream("timed").withMaxReadTime(Duration.standardSeconds(3)))
            .apply(Count.globally());

    PAssert.thatSingleton(count).isEqualTo(50L);
    pipeline.run().waitUntilFinish();
    assertThat(System.currentTimeMillis() - start, lessThan(30_000L));
  }

  @Test
  public void readSourceDescriptorsWithMaxNumRecordsLimitsEachDescriptor() throws Exception {
    createStream(connection, "left", "left.>");
    createStream(connection, "right", "right.>");
    publish(connection, "left.x", 40);
    publish(connection, "right.x", 40);

    PCollection<Long> count =
        pipeline
            .apply(Create.of(NatsSourceDescriptor.of("left"), NatsSourceDescriptor.of("right")))
            .apply(NatsIO.readSourceDescriptors().withServers(SERVER.url()).withMaxNumRecords(15))
            .apply(Count.globally());

    PAssert.thatSingleton(count).isEqualTo(30L);
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void checkpointSplitGivesThePrimaryWhatItReadAndTheResidualTheRestOfTheBudget() {
    Instant deadline = Instant.now().plus(Duration.standardHours(1));
    LimitedOffsetRange budget = new LimitedOffsetRange(new OffsetRange(10, Long.MAX_VALUE), 100, deadline);
    LimitedOffsetRange.Tracker tracker = new LimitedOffsetRange.Tracker(budget, new OffsetRangeTracker(budget.getRange()), false);
    for (long position = 10; position < 40; position += 3) { // 10 claims, with gaps as in a filtered stream
      assertThat(tracker.tryClaim(position), equalTo(true));
    }

    SplitResult<LimitedOffsetRange> split = tracker.trySplit(0);

    assertThat(split.getPrimary(), equalTo(new LimitedOffsetRange(new OffsetRange(10, 38), 10, deadline)));
    assertThat(split.getResidual(), equalTo(new LimitedOffsetRange(new OffsetRange(38, Long.MAX_VALUE), 90, deadline)));
  }

  @Test
  public void limitedRestrictionRefusesFractionalSplitsThatWouldMultiplyTheBudget() {
    LimitedOffsetRange budget = new LimitedOffsetRange(new OffsetRange(0, 1_000), 100, null);
    LimitedOffsetRange.Tracker tracker = new LimitedOffsetRange.Tracker(budget, new OffsetRangeTracker(budget.getRange()), false);
    tracker.tryClaim(0L);

    assertThat(tracker.trySplit(0.5), equalTo(null));
  }

  @Test
  public void spentBudgetRefusesClaimsAndLeavesTheRangeDone() {
    LimitedOffsetRange budget = new LimitedOffsetRange(new OffsetRange(0, Long.MAX_VALUE), 2, null);
    LimitedOffsetRange.Tracker tracker = new LimitedOffsetRange.Tracker(budget, new OffsetRangeTracker(budget.getRange()), false);

    assertThat(List.of(tracker.tryClaim(0L), tracker.tryClaim(1L), tracker.tryClaim(2L)), equalTo(List.of(true, true, false)));
    tracker.checkDone(); // Throws if positions were left unclaimed.
  }

  @Test
  public void restrictionCoderRoundTripsRangeBudgetAndDeadline() throws Exception {
    LimitedOffsetRange withDeadline = new LimitedOffsetRange(new OffsetRange(5, 9), 3, Instant.ofEpochMilli(1_234_567));
    LimitedOffsetRange unlimited = LimitedOffsetRange.unlimited(new OffsetRange(0, Long.MAX_VALUE));
    for (LimitedOffsetRange value : List.of(withDeadline, unlimited)) {
      byte[] bytes = CoderUtils.encodeToByteArray(LimitedOffsetRange.Coder.of(), value);
      assertThat(CoderUtils.decodeFromByteArray(LimitedOffsetRange.Coder.of(), bytes), equalTo(value));
    }
  }
}
