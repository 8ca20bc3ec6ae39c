package dev.natsio.beam;

import io.nats.client.Message;
import io.nats.client.api.StreamInfo;
import io.nats.client.api.StreamState;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.InstantCoder;
import org.apache.beam.sdk.io.range.OffsetRange;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.splittabledofn.GrowableOffsetRangeTracker;
import org.apache.beam.sdk.transforms.splittabledofn.ManualWatermarkEstimator;
import org.apache.beam.sdk.transforms.splittabledofn.OffsetRangeTracker;
import org.apache.beam.sdk.transforms.splittabledofn.RestrictionTracker;
import org.apache.beam.sdk.transforms.splittabledofn.WatermarkEstimator;
import org.apache.beam.sdk.transforms.splittabledofn.WatermarkEstimators;
import org.apache.beam.sdk.transforms.errorhandling.BadRecordRouter;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.values.TupleTag;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Duration;
import org.joda.time.Instant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The splittable DoFn behind {@link NatsIO#read()} and {@link NatsIO#readSourceDescriptors()}:
 * reads the JetStream stream a {@link NatsSourceDescriptor} names, as an {@link OffsetRange} over
 * stream sequence numbers.
 *
 * <h2>Initial restriction</h2>
 *
 * <p>From: the descriptor's start sequence (raised to the stream's first), the first sequence
 * stored at or after its start time, or the stream's first sequence. To (exclusive): the stop
 * sequence; the last sequence + 1 for stop-at-end-of-stream; the first sequence at or after the
 * stop time (or the last + 1 when that time has passed with nothing after it); {@code
 * Long.MAX_VALUE} otherwise. A stop time still in the future also leaves the end open: the read
 * then ends at the first message stored at or after it, or once that time has passed with the
 * stream caught up. Positions are resolved against the server once, here, and are the runner's
 * from then on: the server keeps no position for us.
 *
 * <p>The restriction is a {@link LimitedOffsetRange}: that range plus what is left of the read's
 * {@code withMaxNumRecords} / {@code withMaxReadTime} budget (none by default). A read with a
 * budget is bounded even without a stop; it ends when the budget is spent, the deadline passes or
 * the range ends, whichever comes first.
 *
 * <h2>Splitting</h2>
 *
 * <p>Bounded ranges are split up front into pieces of {@code splitSize} sequences so a backfill
 * reads in parallel; the runner may split further at any claimed position ({@link
 * OffsetRangeTracker}). Unbounded ranges use a {@link GrowableOffsetRangeTracker} whose end is
 * estimated from the stream's last sequence + 1 as the read loop last fetched it (at most a second
 * old while it runs): runners ask for estimates from other threads (checkpoints, {@code @GetSize}),
 * which never call the server and never wait ({@link JetStreamReadCore#stats}). A range with a
 * record or time budget is not split up front and only at checkpoints afterwards (see {@link
 * LimitedOffsetRange.Tracker}): the budget holds per descriptor, exactly.
 *
 * <h2>Reading and gaps</h2>
 *
 * <p>Each call takes a {@link JetStreamReader} parked at the restriction's start ({@link
 * JetStreamReader#PARKED}) or opens one (in the background; see below), then claims each delivered sequence. The steps both read
 * forms share (message to element, caught-up and end-of-range checks, failures, statistics) are
 * in {@link JetStreamReadCore}. Sequences have gaps
 * (deletes, purges, filters, limits): claims need only increase. When nothing arrives for a poll
 * interval and the range has an end, the read asks the server for the next matching sequence; if
 * none lies below the end, it claims the end so the range is done. A refused request (a missing
 * permission, the stream deleted) fails the read; a server that does not answer is asked again.
 * Once reading, these requests and the statistics refresh run on a background thread ({@link
 * JetStreamReadCore#lookAhead}): the call returns and polls again rather than wait for an answer,
 * so a server without a JetStream leader holds the runner's thread for a poll, not a request
 * timeout.
 *
 * <h2>Checkpoint and resume</h2>
 *
 * <p>The residual restriction starts at the last claimed sequence + 1; the reader is parked under
 * that sequence so the resumed call continues without a new consumer. After a restore from an
 * older checkpoint the positions differ, a new consumer starts at the restored position, and
 * every message after it is read again exactly once. A DoFn instance's teardown closes only the
 * readers it parked itself.
 *
 * <h2>Progress and size</h2>
 *
 * <p>Size is the remaining sequences times the stream's average message size, from the statistics
 * the read loop keeps (before any, each sequence counts as one byte). Counters of
 * messages and bytes read and a backlog gauge per stream are reported, as is the source's lineage.
 *
 * <h2>Watermark</h2>
 *
 * <p>With publish-time timestamps (the default) the watermark is the latest publish time read,
 * through a manual estimator kept monotonic. When the read has caught up (the server holds nothing
 * after the next position) it advances to now minus the idle delay, so event-time windows close on
 * a quiet stream. With a timestamp function it trails the largest timestamp by the allowed delay
 * and, once caught up, advances to now less that delay; with processing time it is wall time. A
 * timestamp function that throws sends its message to the bad-record handler when the read has
 * one, and fails the read otherwise.
 *
 * <p>A read that found nothing in a poll resumes after {@link #IDLE_RESUME_DELAY} rather than at
 * once. The Flink runner emits an SDF's watermark only between its bundles, and an immediate
 * resume starts the next bundle before the watermark update runs: an idle read that resumed at
 * once held every window after it open for good ({@code FlinkReadSourceDescriptorsTest}). The
 * delay is as long as Flink's default bundle time (1 s): measured on a quiet machine, with 100 ms
 * and 500 ms the windows after the read still never closed (5 of 5 runs), with 1 s they closed in
 * 3 of 3. It costs at most that long of extra latency for the first message after a quiet spell.
 */
abstract class ReadFromJetStreamDoFn extends DoFn<NatsSourceDescriptor, NatsMessage> {
  private static final Logger LOG = LoggerFactory.getLogger(ReadFromJetStreamDoFn.class);
  static final java.time.Duration POLL_TIMEOUT = java.time.Duration.ofMillis(250);
  private static final Duration RECONNECT_BACKOFF = Duration.millis(JetStreamReadCore.REOPEN_BACKOFF_MILLIS);
  /** How long a read that found nothing waits before it polls again; see the class comment. */
  static final Duration IDLE_RESUME_DELAY = Duration.millis(1000);

  private final NatsIO.ReadSourceDescriptors spec;
  private final boolean routeBadRecords;

  private transient NatsConnections.@Nullable Lease lease;
  private transient volatile @Nullable JetStreamMetadata metadata;
  /** One core per stream; read from the runner's size, progress and split threads too. */
  private transient @Nullable ConcurrentHashMap<String, JetStreamReadCore> cores;
  private transient @Nullable Set<String> lineageReported;
  private transient @Nullable RatePacer pacer;

  ReadFromJetStreamDoFn(NatsIO.ReadSourceDescriptors spec, boolean routeBadRecords) {
    this.spec = spec;
    this.routeBadRecords = routeBadRecords;
  }

  static ReadFromJetStreamDoFn create(NatsIO.ReadSourceDescriptors spec) {
    return create(spec, false);
  }

  /** With {@code routeBadRecords}, messages whose timestamp function throws go to {@link BadRecordRouter#BAD_RECORD_TAG}. */
  static ReadFromJetStreamDoFn create(NatsIO.ReadSourceDescriptors spec, boolean routeBadRecords) {
    return spec.isBounded() || spec.hasLimits() ? new Bounded(spec, routeBadRecords) : new Unbounded(spec, routeBadRecords);
  }

  /** The bounded flavour: the output PCollection is bounded, so batch runners can read it. */
  @BoundedPerElement
  static final class Bounded extends ReadFromJetStreamDoFn {
    Bounded(NatsIO.ReadSourceDescriptors spec, boolean routeBadRecords) {
      super(spec, routeBadRecords);
    }
  }

  /** The unbounded flavour, for live tails. */
  @UnboundedPerElement
  static final class Unbounded extends ReadFromJetStreamDoFn {
    Unbounded(NatsIO.ReadSourceDescriptors spec, boolean routeBadRecords) {
      super(spec, routeBadRecords);
    }
  }

  // ---- Initial restriction and splitting -------------------------------------------------------

  @GetInitialRestriction
  public LimitedOffsetRange initialRestriction(@Element NatsSourceDescriptor descriptor) {
    String stream = descriptor.getStream();
    if (spec.isBounded() && !descriptor.isBounded() && !spec.hasLimits()) {
      throw new IllegalArgumentException(
          "readSourceDescriptors().withBounded() needs every descriptor to have a stop, but the one for stream '"
              + stream + "' has none: give it withStopSequence, withStopTime or withStopAtEndOfStream.");
    }
    StreamInfo info = metadata().readableStream(descriptor);
    StreamState state = info.getStreamState();
    core(stream).recordStats(state);
    long from = metadata().startSequence(descriptor, state);
    long last = state.getLastSequence();

    long to;
    if (descriptor.getStopSequence() != null) {
      to = descriptor.getStopSequence();
    } else if (descriptor.getStopAtEndOfStream()) {
      to = last + 1;
    } else if (descriptor.getStopTime() != null) {
      JetStreamMetadata.TimedPosition stop = metadata().firstSequenceAtOrAfter(stream, descriptor.getStopTime());
      boolean stopTimePassed = !Instant.now().isBefore(descriptor.getStopTime());
      to = stop.exists || stopTimePassed ? stop.sequence : Long.MAX_VALUE;
    } else {
      to = Long.MAX_VALUE;
    }
    OffsetRange range = new OffsetRange(from, Math.max(from, to));
    LimitedOffsetRange restriction = LimitedOffsetRange.withLimits(range, spec.getMaxNumRecords(), spec.getMaxReadTime());
    long size = range.getTo() - range.getFrom();
    long splits = restriction.isLimited() || range.getTo() == Long.MAX_VALUE || size <= spec.getSplitSize()
        ? 1 : range.split(spec.getSplitSize(), 1).size();
    metadata().logResolvedRange(descriptor, info, range.getFrom(), range.getTo(), splits);
    return restriction;
  }

  @SplitRestriction
  public void splitRestriction(@Restriction LimitedOffsetRange restriction, OutputReceiver<LimitedOffsetRange> receiver) {
    OffsetRange range = restriction.getRange();
    long size = range.getTo() - range.getFrom();
    if (restriction.isLimited() || range.getTo() == Long.MAX_VALUE || size <= spec.getSplitSize()) {
      receiver.output(restriction);
      return;
    }
    for (OffsetRange piece : range.split(spec.getSplitSize(), 1)) {
      receiver.output(LimitedOffsetRange.unlimited(piece));
    }
  }

  @NewTracker
  public RestrictionTracker<LimitedOffsetRange, Long> newTracker(
      @Element NatsSourceDescriptor descriptor, @Restriction LimitedOffsetRange restriction) {
    OffsetRange range = restriction.getRange();
    RestrictionTracker<OffsetRange, Long> tracker;
    if (range.getTo() == Long.MAX_VALUE && !descriptor.isBounded()) {
      JetStreamReadCore core = core(descriptor.getStream());
      // The value the read loop keeps current: the runner calls this from its split and progress threads.
      tracker = new GrowableOffsetRangeTracker(range.getFrom(), () -> core.stats().lastSequence + 1);
    } else {
      tracker = new OffsetRangeTracker(range);
    }
    return new LimitedOffsetRange.Tracker(restriction, tracker, false);
  }

  @GetRestrictionCoder
  public Coder<LimitedOffsetRange> restrictionCoder() {
    return LimitedOffsetRange.Coder.of();
  }

  /** From the statistics the read loop keeps: no server call, whatever thread asks. */
  @GetSize
  public double getSize(@Element NatsSourceDescriptor descriptor, @Restriction LimitedOffsetRange restriction) {
    JetStreamReadCore.StreamStats stats = core(descriptor.getStream()).stats();
    OffsetRange range = restriction.getRange();
    long end = range.getTo() == Long.MAX_VALUE ? stats.lastSequence + 1 : range.getTo();
    long sequences = Math.min(Math.max(0, end - range.getFrom()), restriction.getMaxRecords());
    return sequences * stats.averageMessageBytes();
  }

  // ---- Watermark -------------------------------------------------------------------------------

  @GetInitialWatermarkEstimatorState
  public Instant initialWatermark(@Timestamp Instant elementTimestamp) {
    return elementTimestamp;
  }

  @GetWatermarkEstimatorStateCoder
  public Coder<Instant> watermarkStateCoder() {
    return InstantCoder.of();
  }

  @NewWatermarkEstimator
  public WatermarkEstimator<Instant> newWatermarkEstimator(@WatermarkEstimatorState Instant state) {
    Instant start = state.isBefore(BoundedWindow.TIMESTAMP_MIN_VALUE) ? BoundedWindow.TIMESTAMP_MIN_VALUE : state;
    if (spec.getTimestampPolicy() == NatsIO.TimestampPolicy.PROCESSING_TIME) {
      return new WatermarkEstimators.WallTime(start);
    }
    return new WatermarkEstimators.Manual(start);
  }

  // ---- Reading ---------------------------------------------------------------------------------

  @ProcessElement
  public ProcessContinuation processElement(
      @Element NatsSourceDescriptor descriptor,
      RestrictionTracker<LimitedOffsetRange, Long> tracker,
      WatermarkEstimator<Instant> watermarkEstimator,
      MultiOutputReceiver receiver)
      throws InterruptedException {
    String stream = descriptor.getStream();
    List<String> filters = descriptor.getFilterSubjects();
    JetStreamReadCore core = core(stream);
    reportLineage(stream);

    LimitedOffsetRange budget = tracker.currentRestriction();
    long nextSequence = budget.getRange().getFrom();
    core.collectBackgroundResults();
    // Opened in the background, waited for no longer than a poll: a server without a JetStream
    // leader would hold this thread for a request timeout.
    JetStreamReader reader = core.takeOrOpen(position(descriptor, nextSequence), spec.getBatchSize(), this, POLL_TIMEOUT);
    if (reader == null) {
      // Still opening, or the server is away or has no JetStream leader for now (a restart, an
      // election): wait for it rather than fail the bundle, which on Flink would restart the job.
      return ProcessContinuation.resume().withResumeDelay(RECONNECT_BACKOFF);
    }
    @Nullable Instant stopTime = descriptor.getStopTime();
    ManualWatermarkEstimator<Instant> manualWatermark =
        watermarkEstimator instanceof ManualWatermarkEstimator ? (ManualWatermarkEstimator<Instant>) watermarkEstimator : null;
    OutputReceiver<NatsMessage> output = receiver.get(MESSAGES);

    long messageCount = 0;
    long byteCount = 0;
    Long parkAt = null;
    boolean failed = true;
    try {
      while (true) {
        core.collectBackgroundResults();
        core.refreshStatsInBackground(this::metadata);
        if (messageCount >= budget.getMaxRecords() || budget.deadlinePassed()) {
          // withMaxNumRecords is reached or withMaxReadTime is up: the read ends here, without
          // waiting for another message (this reader is closed: its position is past the end).
          tracker.tryClaim(Long.MAX_VALUE);
          failed = false;
          return ProcessContinuation.stop();
        }
        Message message;
        try {
          message = reader.next(POLL_TIMEOUT);
        } catch (NatsIOException e) {
          // The consumer failed (e.g. it was lost in a leader change). Everything claimed so far is
          // output; a new consumer starts at the next sequence when the read resumes.
          LOG.warn("Reading stream {} at sequence {} failed ({}); resuming with a new consumer", stream, nextSequence, e.getMessage());
          return ProcessContinuation.resume().withResumeDelay(RECONNECT_BACKOFF);
        }
        if (message == null) {
          boolean hasEnd = tracker.currentRestriction().getRange().getTo() != Long.MAX_VALUE || stopTime != null;
          JetStreamReadCore.LookAhead ahead =
              hasEnd || manualWatermark != null ? core.lookAhead(this::metadata, filters, nextSequence) : null;
          if (finishIfRangeExhausted(core, descriptor, tracker, ahead)) {
            // Nothing matching lies below the end, so the reader can serve the range that follows.
            long end = tracker.currentRestriction().getRange().getTo();
            parkAt = end == Long.MAX_VALUE ? null : end;
            failed = false;
            return ProcessContinuation.stop();
          }
          parkAt = nextSequence;
          if (manualWatermark != null && ahead != null && ahead.caughtUp()) {
            advance(manualWatermark, core.idleWatermark(ahead.askedAt));
          }
          failed = false;
          return ProcessContinuation.resume().withResumeDelay(IDLE_RESUME_DELAY);
        }
        JetStreamReadCore.Element element = core.toElement(message);
        if (stopTime != null && !element.publishTime.isBefore(stopTime)) {
          tracker.tryClaim(Long.MAX_VALUE); // Marks the range done: nothing before the stop time remains.
          failed = false;
          return ProcessContinuation.stop();
        }
        if (pacer != null) {
          pacer.acquire(); // withMaxMessagesPerSecond: wait for this message's slot.
        }
        if (!tracker.tryClaim(element.sequence)) {
          failed = false;
          if (messageCount >= budget.getMaxRecords() || budget.deadlinePassed()) {
            return ProcessContinuation.stop(); // The budget is spent: the read ends, and so does this reader.
          }
          reader.pushBack(message);
          parkAt = tracker.currentRestriction().getRange().getTo();
          return ProcessContinuation.stop();
        }
        nextSequence = element.sequence + 1;
        if (element.timestamp == null) {
          if (!routeBadRecords) {
            throw core.timestampFailure(element);
          }
          routeBadRecord(receiver, element);
          continue;
        }
        if (manualWatermark != null) {
          advance(manualWatermark, core.watermarkAfter(element.timestamp));
        }
        output.outputWithTimestamp(element.message, element.timestamp);
        messageCount++;
        byteCount += element.message.getPayload().length;
      }
    } finally {
      if (parkAt != null && !failed) {
        JetStreamReader.PARKED.park(position(descriptor, parkAt), reader, this);
      } else if (failed) {
        reader.closeAfterFailure();
      } else {
        reader.close();
      }
      core.metrics().recordRead(messageCount, byteCount);
      if (core.stats().known) {
        core.metrics().recordBacklog(core.backlogMessages(nextSequence));
      }
    }
  }

  @Setup
  public void setup() {
    pacer = spec.getMaxMessagesPerSecond() == null ? null : new RatePacer(spec.getMaxMessagesPerSecond());
  }

  @Teardown
  public void teardown() {
    JetStreamReader.PARKED.closeIdleOwnedBy(this, "its DoFn was torn down");
    if (lease != null) {
      lease.close();
      lease = null;
      metadata = null;
    }
  }

  /** Descriptors may carry event timestamps of their own; messages are older or newer at will. */
  @Override
  @SuppressWarnings("deprecation")
  public Duration getAllowedTimestampSkew() {
    return Duration.millis(Long.MAX_VALUE);
  }

  // ---- Helpers ---------------------------------------------------------------------------------

  /**
   * When the range has an end and the server held nothing matching below it (beyond what was
   * read) by the latest {@link JetStreamReadCore#lookAhead} at this position, claims the end so the
   * range is done. Without an answer yet (it is asked in the background, and again while the server
   * does not answer) the read polls again.
   */
  private static boolean finishIfRangeExhausted(
      JetStreamReadCore core, NatsSourceDescriptor descriptor, RestrictionTracker<LimitedOffsetRange, Long> tracker,
      JetStreamReadCore.@Nullable LookAhead ahead) {
    long to = tracker.currentRestriction().getRange().getTo();
    Instant stopTime = descriptor.getStopTime();
    if (ahead == null || (to == Long.MAX_VALUE && stopTime == null)) {
      return false;
    }
    // Judged at the time read before asking: anything stored after the answer is stamped later.
    boolean stopTimePassed = stopTime != null && !ahead.askedAt.isBefore(stopTime);
    if (to == Long.MAX_VALUE && !stopTimePassed) {
      return false;
    }
    JetStreamReadCore.StreamStats stats = core.stats();
    if (to != Long.MAX_VALUE && (stats.lastSequence + 1 < to || stats.fetchedAtMillis >= ahead.startedAtMillis)) {
      // Sequences below the end are still to be written (or were when the server was asked, as far
      // as the statistics tell): wait for them, and for an answer given after they were.
      return stopTimePassed && finishAtStopTime(tracker, ahead, stopTime);
    }
    if (ahead.nextSequence == null || ahead.nextSequence >= to) {
      tracker.tryClaim(to);
      return true;
    }
    return stopTimePassed && finishAtStopTime(tracker, ahead, stopTime);
  }

  private static boolean finishAtStopTime(
      RestrictionTracker<LimitedOffsetRange, Long> tracker, JetStreamReadCore.LookAhead ahead, Instant stopTime) {
    if (ahead.nextPublishTime == null || !ahead.nextPublishTime.isBefore(stopTime)) {
      tracker.tryClaim(Long.MAX_VALUE);
      return true;
    }
    return false;
  }

  private static void routeBadRecord(MultiOutputReceiver receiver, JetStreamReadCore.Element element) {
    String description = "withTimestampFn failed on the message at sequence " + element.sequence + " of stream '"
        + element.message.getStream() + "'";
    try {
      BadRecordRouter.RECORDING_ROUTER.route(receiver, element.message, NatsMessageCoder.of(), element.timestampError, description);
    } catch (Exception e) {
      throw new NatsIOException(description + ", and handing it to the bad-record handler failed: " + e.getMessage(), e);
    }
  }

  private static void advance(ManualWatermarkEstimator<Instant> watermark, @Nullable Instant candidate) {
    if (candidate != null && candidate.isAfter(watermark.currentWatermark())) {
      watermark.setWatermark(candidate);
    }
  }

  private JetStreamReader.Position position(NatsSourceDescriptor descriptor, long nextSequence) {
    return new JetStreamReader.Position(
        spec.getConnectionConfiguration(), descriptor.getStream(), descriptor.getFilterSubjects(), nextSequence);
  }

  private void reportLineage(String stream) {
    if (lineageReported == null) {
      lineageReported = new HashSet<>();
    }
    if (lineageReported.add(stream)) {
      JetStreamReadMetrics.reportLineage(spec.getConnectionConfiguration(), stream);
    }
  }

  JetStreamReadCore core(String stream) {
    ConcurrentHashMap<String, JetStreamReadCore> byStream = cores;
    if (byStream == null) {
      synchronized (this) {
        if (cores == null) {
          cores = new ConcurrentHashMap<>();
        }
        byStream = cores;
      }
    }
    return byStream.computeIfAbsent(stream, name -> new JetStreamReadCore(spec, name));
  }

  private synchronized JetStreamMetadata metadata() {
    if (metadata == null) {
      lease = NatsConnections.acquireFor(this, spec.getConnectionConfiguration());
      metadata = new JetStreamMetadata(lease.connection(), spec.getConnectionConfiguration());
    }
    return metadata;
  }

  /** The main output; the bad-record output is {@link BadRecordRouter#BAD_RECORD_TAG}. */
  static final TupleTag<NatsMessage> MESSAGES = new TupleTag<NatsMessage>() {};
}
