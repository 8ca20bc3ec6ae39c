package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;
import static org.hamcrest.Matchers.lessThanOrEqualTo;
import static org.hamcrest.Matchers.notNullValue;
import static org.hamcrest.Matchers.nullValue;

import dev.natsio.beam.testing.NatsTestServer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.beam.sdk.fn.splittabledofn.RestrictionTrackers;
import org.apache.beam.sdk.io.range.OffsetRange;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.splittabledofn.RestrictionTracker;
import org.apache.beam.sdk.transforms.splittabledofn.SplitResult;
import org.apache.beam.sdk.transforms.splittabledofn.WatermarkEstimator;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.transforms.windowing.GlobalWindow;
import org.apache.beam.sdk.transforms.windowing.PaneInfo;
import org.apache.beam.sdk.values.Row;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.WindowedValues;
import org.joda.time.Instant;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * The splittable DoFn called as a runner calls it: restrictions, trackers and estimates from
 * other threads, checkpoints, teardown of one instance among several.
 */
public class ReadFromJetStreamDoFnTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  private static NatsIO.Read read(String stream) {
    return NatsIO.read().withServers(SERVER.url()).withStream(stream);
  }

  private static ReadFromJetStreamDoFn fn(String stream) {
    ReadFromJetStreamDoFn fn = ReadFromJetStreamDoFn.create(read(stream).toReadSourceDescriptors());
    fn.setup();
    return fn;
  }

  @Test
  public void teardownClosesOnlyTheReadersItsOwnInstanceParked() throws Exception {
    createStream(SERVER.sharedConnection(), "own_a", "own_a.>");
    createStream(SERVER.sharedConnection(), "own_b", "own_b.>");
    publish(SERVER.sharedConnection(), "own_a.x", 3);
    publish(SERVER.sharedConnection(), "own_b.x", 3);
    ReadFromJetStreamDoFn a = fn("own_a");
    ReadFromJetStreamDoFn b = fn("own_b");
    try {
      readUntilCaughtUp(a, NatsSourceDescriptor.of("own_a"), 3);
      readUntilCaughtUp(b, NatsSourceDescriptor.of("own_b"), 3);

      a.teardown(); // Same connection configuration as b: b's parked reader must survive.

      JetStreamReader bReader = JetStreamReader.PARKED.take(position("own_b", 4));
      JetStreamReader aReader = JetStreamReader.PARKED.take(position("own_a", 4));
      assertThat(bReader, notNullValue());
      assertThat(aReader, nullValue());
      bReader.close();
    } finally {
      a.teardown();
      b.teardown();
    }
  }

  @Test
  public void sizeAndRangeEndEstimatesSendNoRequestToTheServer() throws Exception {
    createStream(SERVER.sharedConnection(), "estimates", "estimates.>");
    publish(SERVER.sharedConnection(), "estimates.x", 10); // Payloads "m0".."m9": 2 bytes each.
    NatsSourceDescriptor descriptor = NatsSourceDescriptor.of("estimates");
    ReadFromJetStreamDoFn reader = fn("estimates");
    ReadFromJetStreamDoFn other = fn("estimates"); // Another instance, as a runner's size requests may use.
    try (NatsConnections.Lease lease = NatsConnections.acquire(read("estimates").toReadSourceDescriptors().getConnectionConfiguration())) {
      long beforeRestriction = lease.connection().getStatistics().getRequestsSent();
      LimitedOffsetRange live = reader.initialRestriction(descriptor);
      assertThat("the restriction is resolved on the server", lease.connection().getStatistics().getRequestsSent(), greaterThan(beforeRestriction));
      RestrictionTracker<LimitedOffsetRange, Long> tracker = reader.newTracker(descriptor, live);
      assertThat(tracker.tryClaim(1L), equalTo(true));

      long before = lease.connection().getStatistics().getRequestsSent();
      AtomicReference<Object> results = new AtomicReference<>();
      Thread runnerThread = new Thread(() -> {
        SplitResult<LimitedOffsetRange> split = tracker.trySplit(0.5);
        double known = reader.getSize(descriptor, live);
        double unknown = other.getSize(descriptor, live);
        results.set(List.of(split.getResidual().getRange().getFrom(), known, unknown));
      });
      runnerThread.start();
      runnerThread.join();

      assertThat(lease.connection().getStatistics().getRequestsSent(), equalTo(before));
      // Split halfway through [2, 11), the end estimated from the stream's last sequence 10. The size is
      // the 10 sequences times the stream's stored bytes per message where the instance knows the
      // stream's state, and nothing (no growth seen yet) where it has not read it.
      io.nats.client.api.StreamState state =
          SERVER.sharedConnection().jetStreamManagement().getStreamInfo("estimates").getStreamState();
      assertThat(results.get(), equalTo(List.of(6L, 10.0 * state.getByteCount() / state.getMsgCount(), 0.0)));
    } finally {
      reader.teardown();
      other.teardown();
    }
  }

  @Test
  public void concurrentSplitAndSizeRequestsDuringAReadLoseAndRepeatNothing() throws Exception {
    int count = 3_000;
    createStream(SERVER.sharedConnection(), "busy", "busy.>");
    publish(SERVER.sharedConnection(), "busy.x", count);
    NatsSourceDescriptor descriptor = NatsSourceDescriptor.of("busy");
    ReadFromJetStreamDoFn fn = fn("busy");
    List<Long> sequences = Collections.synchronizedList(new ArrayList<>());
    AtomicBoolean done = new AtomicBoolean();
    AtomicReference<Throwable> failure = new AtomicReference<>();
    List<LimitedOffsetRange> pending = Collections.synchronizedList(new ArrayList<>());
    pending.add(fn.initialRestriction(descriptor));
    try {
      while (!pending.isEmpty() && sequences.size() < count) {
        LimitedOffsetRange restriction = pending.remove(0);
        RestrictionTracker<LimitedOffsetRange, Long> tracker = RestrictionTrackers.synchronize(fn.newTracker(descriptor, restriction));
        // The runner's other threads: size and progress requests, and splits handing work to residuals.
        Thread runner = new Thread(() -> {
          try {
            boolean split = false;
            while (!done.get()) {
              fn.getSize(descriptor, tracker.currentRestriction());
              ((RestrictionTracker.HasProgress) tracker).getProgress();
              if (!split && sequences.size() % 1_000 > 500) {
                SplitResult<LimitedOffsetRange> result = tracker.trySplit(0.5); // Once per call, mid-read.
                if (result != null) {
                  pending.add(result.getResidual());
                  split = true;
                }
              }
            }
          } catch (Throwable t) {
            failure.compareAndSet(null, t);
          }
        });
        done.set(false);
        runner.start();
        DoFn.ProcessContinuation continuation =
            fn.processElement(descriptor, tracker, watermark(fn), receiver(sequences));
        done.set(true);
        runner.join();
        if (continuation.shouldResume()) {
          SplitResult<LimitedOffsetRange> checkpoint = tracker.trySplit(0);
          if (checkpoint != null) {
            pending.add(0, checkpoint.getResidual());
          }
        }
      }
      assertThat(failure.get(), nullValue());
      assertThat(sequences.stream().sorted().collect(Collectors.toList()), equalTo(range(1, count)));
    } finally {
      fn.teardown();
    }
  }

  @Test
  public void resumeFromAnOlderCheckpointWithNoParkedReaderReadsEveryLaterMessageOnce() throws Exception {
    createStream(SERVER.sharedConnection(), "older", "older.>");
    publish(SERVER.sharedConnection(), "older.x", 20);
    NatsSourceDescriptor descriptor = NatsSourceDescriptor.of("older");
    ReadFromJetStreamDoFn fn = fn("older");
    try {
      assertThat(readUntilCaughtUp(fn, descriptor, 20), equalTo(range(1, 20))); // Its reader is parked at 21.

      // A restore from a checkpoint taken after sequence 5: no reader is parked there.
      long openedBefore = JetStreamReader.OPENED.get();
      List<Long> replayed = Collections.synchronizedList(new ArrayList<>());
      RestrictionTracker<LimitedOffsetRange, Long> tracker =
          fn.newTracker(descriptor, LimitedOffsetRange.unlimited(new OffsetRange(6, Long.MAX_VALUE)));
      while (replayed.size() < 15) {
        fn.processElement(descriptor, tracker, watermark(fn), receiver(replayed));
        tracker = checkpoint(fn, descriptor, tracker);
      }

      assertThat(replayed, equalTo(range(6, 20)));
      assertThat(JetStreamReader.OPENED.get() - openedBefore, equalTo(1L));
    } finally {
      fn.teardown();
    }
  }

  @Test
  public void timestampFnReadAdvancesToNowLessTheDelayOnceCaughtUp() throws Exception {
    createStream(SERVER.sharedConnection(), "fn_idle", "fn_idle.>");
    publish(SERVER.sharedConnection(), "fn_idle.x", 3);
    org.joda.time.Duration maxDelay = org.joda.time.Duration.standardSeconds(10);
    ReadFromJetStreamDoFn fn = ReadFromJetStreamDoFn.create(
        read("fn_idle").withTimestampFn(m -> Instant.parse("2020-01-01T00:00:00Z"), maxDelay).toReadSourceDescriptors());
    fn.setup();
    NatsSourceDescriptor descriptor = NatsSourceDescriptor.of("fn_idle");
    try {
      RestrictionTracker<LimitedOffsetRange, Long> tracker = fn.newTracker(descriptor, fn.initialRestriction(descriptor));
      WatermarkEstimator<Instant> watermark = watermark(fn);
      List<Long> sequences = Collections.synchronizedList(new ArrayList<>());
      // The read is caught up once it has passed the third message, which happens during the last
      // call of this loop: the background look-ahead that finds it caught up asks no earlier.
      Instant lastCallStarted = Instant.now();
      while (sequences.size() < 3) {
        lastCallStarted = Instant.now();
        fn.processElement(descriptor, tracker, watermark, receiver(sequences));
        tracker = checkpoint(fn, descriptor, tracker);
      }
      // The look-ahead answers in the background: the call after its answer moves the watermark.
      Instant eventTimes = Instant.parse("2020-01-01T00:00:00Z");
      long deadline = System.currentTimeMillis() + 10_000;
      do {
        fn.processElement(descriptor, tracker, watermark, receiver(sequences));
        tracker = checkpoint(fn, descriptor, tracker);
      } while (!watermark.currentWatermark().isAfter(eventTimes) && System.currentTimeMillis() < deadline);

      assertThat(sequences, equalTo(range(1, 3)));
      assertThat(watermark.currentWatermark().getMillis(), greaterThanOrEqualTo(lastCallStarted.minus(maxDelay).getMillis()));
      assertThat(watermark.currentWatermark().getMillis(), lessThanOrEqualTo(Instant.now().minus(maxDelay).getMillis()));
    } finally {
      fn.teardown();
    }
  }

  @Test
  public void readerClosedAfterAFailureSendsNoRequest() throws Exception {
    createStream(SERVER.sharedConnection(), "failing", "failing.>");
    NatsIO.ConnectionConfiguration configuration = read("failing").toReadSourceDescriptors().getConnectionConfiguration();
    try (NatsConnections.Lease lease = NatsConnections.acquire(configuration)) {
      JetStreamReader reader = JetStreamReader.open(configuration, "failing", List.of(), 1, 10);
      long before = lease.connection().getStatistics().getRequestsSent();
      reader.closeAfterFailure(); // The server is likely away: its consumer is left to expire.
      assertThat(lease.connection().getStatistics().getRequestsSent(), equalTo(before));
      assertThat(SERVER.sharedConnection().jetStreamManagement().getConsumerNames("failing").size(), equalTo(1));
    }
  }

  // ---- Helpers ---------------------------------------------------------------------------------

  /** Reads a live restriction from the start until {@code count} messages were output; its reader stays parked. */
  private static List<Long> readUntilCaughtUp(ReadFromJetStreamDoFn fn, NatsSourceDescriptor descriptor, int count) throws Exception {
    List<Long> sequences = Collections.synchronizedList(new ArrayList<>());
    RestrictionTracker<LimitedOffsetRange, Long> tracker = fn.newTracker(descriptor, fn.initialRestriction(descriptor));
    long deadline = System.currentTimeMillis() + 30_000;
    while (sequences.size() < count && System.currentTimeMillis() < deadline) {
      fn.processElement(descriptor, tracker, watermark(fn), receiver(sequences));
      tracker = checkpoint(fn, descriptor, tracker);
    }
    return sequences;
  }

  /** What a runner does after a call returns "resume": checkpoints, and resumes with the residual. */
  private static RestrictionTracker<LimitedOffsetRange, Long> checkpoint(
      ReadFromJetStreamDoFn fn, NatsSourceDescriptor descriptor, RestrictionTracker<LimitedOffsetRange, Long> tracker) {
    SplitResult<LimitedOffsetRange> split = tracker.trySplit(0);
    return split == null ? tracker : fn.newTracker(descriptor, split.getResidual());
  }

  private static JetStreamReader.Position position(String stream, long nextSequence) {
    return new JetStreamReader.Position(read(stream).toReadSourceDescriptors().getConnectionConfiguration(), stream, List.of(), nextSequence);
  }

  private static WatermarkEstimator<Instant> watermark(ReadFromJetStreamDoFn fn) {
    return fn.newWatermarkEstimator(BoundedWindow.TIMESTAMP_MIN_VALUE);
  }

  /** Collects the sequences of the main output; fails on anything sent to the bad-record output. */
  static DoFn.MultiOutputReceiver receiver(List<Long> sequences) {
    return new DoFn.MultiOutputReceiver() {
      @Override
      @SuppressWarnings("unchecked")
      public <T> DoFn.OutputReceiver<T> get(TupleTag<T> tag) {
        return value -> WindowedValues.<T>builder()
            .setValue(value)
            .setTimestamp(BoundedWindow.TIMESTAMP_MIN_VALUE)
            .setWindow(GlobalWindow.INSTANCE)
            .setPaneInfo(PaneInfo.NO_FIRING)
            .setReceiver(windowed -> {
              if (!(windowed.getValue() instanceof NatsMessage)) {
                throw new AssertionError("Unexpected output " + windowed.getValue());
              }
              sequences.add(((NatsMessage) windowed.getValue()).getSequence());
            });
      }

      @Override
      public <T> DoFn.OutputReceiver<Row> getRowReceiver(TupleTag<T> tag) {
        throw new UnsupportedOperationException();
      }
    };
  }

  private static List<Long> range(long fromInclusive, long toInclusive) {
    return LongStream.rangeClosed(fromInclusive, toInclusive).boxed().collect(Collectors.toList());
  }
}
