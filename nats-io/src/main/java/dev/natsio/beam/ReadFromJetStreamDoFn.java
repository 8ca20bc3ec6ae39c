package dev.natsio.beam;

import io.nats.client.Message;
import io.nats.client.api.MessageInfo;
import io.nats.client.api.StreamInfo;
import io.nats.client.api.StreamState;
import io.nats.client.impl.Headers;
import io.nats.client.impl.NatsJetStreamMetaData;
import java.io.IOException;
import java.time.ZonedDateTime;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
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
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
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
 * estimated from the stream's last sequence + 1, memoized for about a second. A range with a
 * record or time budget is not split up front and only at checkpoints afterwards (see {@link
 * LimitedOffsetRange.Tracker}): the budget holds per descriptor, exactly.
 *
 * <h2>Reading and gaps</h2>
 *
 * <p>Each call takes a {@link JetStreamReader} parked at the restriction's start ({@link
 * JetStreamReader#PARKED}) or opens one, then claims each delivered sequence. Sequences have gaps
 * (deletes, purges, filters, limits): claims need only increase. When nothing arrives for a poll
 * interval and the range has an end, the read asks the server for the next matching sequence; if
 * none lies below the end, it claims the end so the range is done.
 *
 * <h2>Checkpoint and resume</h2>
 *
 * <p>The residual restriction starts at the last claimed sequence + 1; the reader is parked under
 * that sequence so the resumed call continues without a new consumer. After a restore from an
 * older checkpoint the positions differ, a new consumer starts at the restored position, and
 * every message after it is read again exactly once.
 *
 * <h2>Progress and size</h2>
 *
 * <p>Size is the remaining sequences times the stream's average message size. Counters of
 * messages and bytes read and a backlog gauge per stream are reported, as is the source's lineage.
 *
 * <h2>Watermark</h2>
 *
 * <p>With publish-time timestamps (the default) the watermark is the latest publish time read,
 * through a manual estimator kept monotonic. When the read has caught up (the server holds nothing
 * after the next position) it advances to now minus the idle delay, so event-time windows close on
 * a quiet stream. With a timestamp function it trails the largest timestamp by the allowed delay;
 * with processing time it is wall time.
 */
abstract class ReadFromJetStreamDoFn extends DoFn<NatsSourceDescriptor, NatsMessage> {
  private static final Logger LOG = LoggerFactory.getLogger(ReadFromJetStreamDoFn.class);
  static final java.time.Duration POLL_TIMEOUT = java.time.Duration.ofMillis(250);
  private static final long STATS_TTL_MILLIS = 1_000;
  private static final Duration RECONNECT_BACKOFF = Duration.standardSeconds(1);

  private final NatsIO.ReadSourceDescriptors spec;

  private transient NatsConnections.@Nullable Lease lease;
  private transient @Nullable JetStreamMetadata metadata;
  private transient @Nullable Map<String, StreamStats> statsByStream;
  private transient @Nullable Set<String> lineageReported;
  private transient @Nullable RatePacer pacer;

  ReadFromJetStreamDoFn(NatsIO.ReadSourceDescriptors spec) {
    this.spec = spec;
  }

  static ReadFromJetStreamDoFn create(NatsIO.ReadSourceDescriptors spec) {
    return spec.isBounded() || spec.hasLimits() ? new Bounded(spec) : new Unbounded(spec);
  }

  /** The bounded flavour: the output PCollection is bounded, so batch runners can read it. */
  @BoundedPerElement
  static final class Bounded extends ReadFromJetStreamDoFn {
    Bounded(NatsIO.ReadSourceDescriptors spec) {
      super(spec);
    }
  }

  /** The unbounded flavour, for live tails. */
  @UnboundedPerElement
  static final class Unbounded extends ReadFromJetStreamDoFn {
    Unbounded(NatsIO.ReadSourceDescriptors spec) {
      super(spec);
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
      String stream = descriptor.getStream();
      tracker = new GrowableOffsetRangeTracker(range.getFrom(), () -> statsFor(stream).lastSequence + 1);
    } else {
      tracker = new OffsetRangeTracker(range);
    }
    return new LimitedOffsetRange.Tracker(restriction, tracker, false);
  }

  @GetRestrictionCoder
  public Coder<LimitedOffsetRange> restrictionCoder() {
    return LimitedOffsetRange.Coder.of();
  }

  @GetSize
  public double getSize(@Element NatsSourceDescriptor descriptor, @Restriction LimitedOffsetRange restriction) {
    StreamStats stats = statsFor(descriptor.getStream());
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
      OutputReceiver<NatsMessage> receiver)
      throws InterruptedException {
    String stream = descriptor.getStream();
    List<String> filters = descriptor.getFilterSubjects();
    NatsIO.ConnectionConfiguration connection = spec.getConnectionConfiguration();
    reportLineage(stream);

    LimitedOffsetRange budget = tracker.currentRestriction();
    long nextSequence = budget.getRange().getFrom();
    JetStreamReader reader = JetStreamReader.PARKED.take(position(descriptor, nextSequence));
    if (reader == null) {
      try {
        reader = JetStreamReader.open(connection, stream, filters, nextSequence, spec.getBatchSize());
      } catch (NatsIOException e) {
        if (!(e.getCause() instanceof IOException)) {
          throw e; // A refusal (e.g. the stream was deleted), not an outage: waiting will not help.
        }
        // The server is away or has no JetStream leader for now (a restart, an election): wait for
        // it rather than fail the bundle, which on Flink would restart the job from a checkpoint.
        LOG.info("JetStream at {} does not answer for stream {} ({}); the read resumes when it does",
            connection.displayServers(), stream, e.getMessage());
        return ProcessContinuation.resume().withResumeDelay(RECONNECT_BACKOFF);
      }
    }
    @Nullable Instant stopTime = descriptor.getStopTime();
    ManualWatermarkEstimator<Instant> manualWatermark =
        watermarkEstimator instanceof ManualWatermarkEstimator ? (ManualWatermarkEstimator<Instant>) watermarkEstimator : null;

    long messageCount = 0;
    long byteCount = 0;
    Long parkAt = null;
    try {
      while (true) {
        if (messageCount >= budget.getMaxRecords() || budget.deadlinePassed()) {
          // withMaxNumRecords is reached or withMaxReadTime is up: the read ends here, without
          // waiting for another message (this reader is closed: its position is past the end).
          tracker.tryClaim(Long.MAX_VALUE);
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
          if (finishIfRangeExhausted(descriptor, tracker, nextSequence)) {
            // Nothing matching lies below the end, so the reader can serve the range that follows.
            long end = tracker.currentRestriction().getRange().getTo();
            parkAt = end == Long.MAX_VALUE ? null : end;
            return ProcessContinuation.stop();
          }
          parkAt = nextSequence;
          if (manualWatermark != null && spec.getTimestampPolicy() == NatsIO.TimestampPolicy.PUBLISH_TIME && metadata().isCaughtUp(descriptor, nextSequence)) {
            advance(manualWatermark, Instant.now().minus(spec.getIdleWatermarkDelay()));
          }
          return ProcessContinuation.resume();
        }
        NatsJetStreamMetaData meta = message.metaData();
        long sequence = meta.streamSequence();
        Instant publishTime = toInstant(meta.timestamp());
        if (stopTime != null && !publishTime.isBefore(stopTime)) {
          tracker.tryClaim(Long.MAX_VALUE); // Marks the range done: nothing before the stop time remains.
          return ProcessContinuation.stop();
        }
        if (pacer != null) {
          pacer.acquire(); // withMaxMessagesPerSecond: wait for this message's slot.
        }
        if (!tracker.tryClaim(sequence)) {
          if (messageCount >= budget.getMaxRecords() || budget.deadlinePassed()) {
            return ProcessContinuation.stop(); // The budget is spent: the read ends, and so does this reader.
          }
          reader.pushBack(message);
          parkAt = tracker.currentRestriction().getRange().getTo();
          return ProcessContinuation.stop();
        }
        nextSequence = sequence + 1;
        NatsMessage output =
            NatsMessage.of(message.getSubject(), message.getData(), headersOf(message), stream, sequence, publishTime);
        Instant timestamp = spec.timestampOf(output, publishTime);
        if (manualWatermark != null) {
          advance(manualWatermark, spec.watermarkAfter(timestamp));
        }
        receiver.outputWithTimestamp(output, timestamp);
        messageCount++;
        byteCount += output.getPayload().length;
      }
    } finally {
      if (parkAt != null) {
        JetStreamReader.PARKED.park(position(descriptor, parkAt), reader);
      } else {
        reader.close();
      }
      recordProgress(stream, messageCount, byteCount, nextSequence);
    }
  }

  @Setup
  public void setup() {
    pacer = spec.getMaxMessagesPerSecond() == null ? null : new RatePacer(spec.getMaxMessagesPerSecond());
  }

  @Teardown
  public void teardown() {
    NatsIO.ConnectionConfiguration connection = spec.getConnectionConfiguration();
    JetStreamReader.PARKED.closeIdleWhere(position -> position.connection.equals(connection), "its DoFn was torn down");
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
   * When the range has an end and the server holds nothing matching below it (beyond what was
   * read), claims the end so the range is done. Server trouble here is not an error: the read just
   * polls again.
   */
  private boolean finishIfRangeExhausted(
      NatsSourceDescriptor descriptor, RestrictionTracker<LimitedOffsetRange, Long> tracker, long nextSequence) {
    long to = tracker.currentRestriction().getRange().getTo();
    Instant stopTime = descriptor.getStopTime();
    boolean stopTimePassed = stopTime != null && !Instant.now().isBefore(stopTime);
    if (to == Long.MAX_VALUE && !stopTimePassed) {
      return false;
    }
    try {
      if (to != Long.MAX_VALUE && metadata().streamInfo(descriptor.getStream()).getStreamState().getLastSequence() + 1 < to) {
        // Sequences below the end are still to be written: wait for them.
        return stopTimePassed && finishAtStopTime(descriptor, tracker, nextSequence);
      }
      MessageInfo next = metadata().nextMessage(descriptor.getStream(), nextSequence, descriptor.getFilterSubjects());
      if (next == null || next.getSeq() >= to) {
        tracker.tryClaim(to);
        return true;
      }
      return stopTimePassed && finishAtStopTime(descriptor, tracker, nextSequence);
    } catch (IOException | RuntimeException e) {
      LOG.debug("Could not check the end of stream {}; polling again", descriptor.getStream(), e);
      return false;
    }
  }

  private boolean finishAtStopTime(
      NatsSourceDescriptor descriptor, RestrictionTracker<LimitedOffsetRange, Long> tracker, long nextSequence)
      throws IOException {
    MessageInfo next = metadata().nextMessage(descriptor.getStream(), nextSequence, descriptor.getFilterSubjects());
    if (next == null || !toInstant(next.getTime()).isBefore(descriptor.getStopTime())) {
      tracker.tryClaim(Long.MAX_VALUE);
      return true;
    }
    return false;
  }

  private static void advance(ManualWatermarkEstimator<Instant> watermark, Instant candidate) {
    if (candidate.isAfter(watermark.currentWatermark())) {
      watermark.setWatermark(candidate);
    }
  }

  private JetStreamReader.Position position(NatsSourceDescriptor descriptor, long nextSequence) {
    return new JetStreamReader.Position(
        spec.getConnectionConfiguration(), descriptor.getStream(), descriptor.getFilterSubjects(), nextSequence);
  }

  private void recordProgress(String stream, long messageCount, long byteCount, long nextSequence) {
    JetStreamReadMetrics metrics = JetStreamReadMetrics.forStream(stream);
    metrics.recordRead(messageCount, byteCount);
    StreamStats stats = statsByStream == null ? null : statsByStream.get(stream);
    if (stats != null) {
      metrics.recordBacklog(stats.lastSequence + 1 - nextSequence);
    }
  }

  private void reportLineage(String stream) {
    if (lineageReported == null) {
      lineageReported = new HashSet<>();
    }
    if (lineageReported.add(stream)) {
      JetStreamReadMetrics.reportLineage(spec.getConnectionConfiguration(), stream);
    }
  }

  private StreamStats statsFor(String stream) {
    if (statsByStream == null) {
      statsByStream = new HashMap<>();
    }
    StreamStats stats = statsByStream.get(stream);
    long now = System.currentTimeMillis();
    if (stats == null || now - stats.fetchedAtMillis > STATS_TTL_MILLIS) {
      try {
        StreamState state = metadata().streamInfo(stream).getStreamState();
        stats = new StreamStats(state.getLastSequence(), state.getMsgCount(), state.getByteCount(), now);
        statsByStream.put(stream, stats);
      } catch (RuntimeException e) {
        // Estimates must not fail a bundle: the runner asks for them (splits, size) at any time,
        // including while a cluster elects a new leader. Unknown for now means "no growth seen".
        LOG.debug("Could not refresh the state of stream {}; using the last known", stream, e);
        return stats == null ? StreamStats.UNKNOWN : stats;
      }
    }
    return stats;
  }

  private NatsConnections.Lease lease() {
    if (lease == null) {
      lease = NatsConnections.acquireFor(this, spec.getConnectionConfiguration());
    }
    return lease;
  }

  private JetStreamMetadata metadata() {
    if (metadata == null) {
      metadata = new JetStreamMetadata(lease().connection(), spec.getConnectionConfiguration());
    }
    return metadata;
  }

  static Instant toInstant(ZonedDateTime time) {
    return Instant.ofEpochMilli(time.toInstant().toEpochMilli());
  }

  static Map<String, List<String>> headersOf(Message message) {
    if (!message.hasHeaders()) {
      return Collections.emptyMap();
    }
    Headers headers = message.getHeaders();
    Map<String, List<String>> copy = new TreeMap<>();
    for (String key : headers.keySet()) {
      copy.put(key, headers.get(key));
    }
    return copy;
  }

  /** The stream's size and last sequence, fetched at most once a second per stream. */
  private static final class StreamStats {
    /** Before the first successful look-up: no messages known, so no growth and no size. */
    static final StreamStats UNKNOWN = new StreamStats(0, 0, 0, 0);

    final long lastSequence;
    final long messages;
    final long bytes;
    final long fetchedAtMillis;

    StreamStats(long lastSequence, long messages, long bytes, long fetchedAtMillis) {
      this.lastSequence = lastSequence;
      this.messages = messages;
      this.bytes = bytes;
      this.fetchedAtMillis = fetchedAtMillis;
    }

    double averageMessageBytes() {
      return messages == 0 ? 0 : (double) bytes / messages;
    }
  }
}
