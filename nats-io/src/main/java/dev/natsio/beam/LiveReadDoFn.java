package dev.natsio.beam;

import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.InstantCoder;
import org.apache.beam.sdk.io.range.OffsetRange;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.splittabledofn.OffsetRangeTracker;
import org.apache.beam.sdk.transforms.splittabledofn.RestrictionTracker;
import org.apache.beam.sdk.transforms.splittabledofn.WatermarkEstimator;
import org.apache.beam.sdk.transforms.splittabledofn.WatermarkEstimators;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.joda.time.Instant;

/**
 * What the two reads without stream positions share: the Core subject read ({@link
 * ReadFromCoreSubjectDoFn}) and the durable-consumer read ({@link ReadFromDurableConsumerDoFn}).
 *
 * <h2>Restriction</h2>
 *
 * <p>Neither has a position the runner could hold: the subscription, or the server-side consumer,
 * is the position. Their restriction counts the messages output, {@code [0, ∞)}, and carries the
 * read's {@code withMaxNumRecords} / {@code withMaxReadTime} budget ({@link LimitedOffsetRange}),
 * so a budget survives checkpoints. The tracker lets the runner checkpoint but never split the
 * budget.
 *
 * <h2>Watermark</h2>
 *
 * <p>Processing time: messages are stamped when they are taken, and the watermark is wall time.
 */
abstract class LiveReadDoFn<InputT> extends DoFn<InputT, NatsMessage> {
  /** The restriction a read with this budget starts with. */
  static LimitedOffsetRange budgetOf(NatsIO.Read spec) {
    return LimitedOffsetRange.withLimits(new OffsetRange(0, Long.MAX_VALUE), spec.getMaxNumRecords(), spec.getMaxReadTime());
  }

  @NewTracker
  public RestrictionTracker<LimitedOffsetRange, Long> newTracker(@Restriction LimitedOffsetRange restriction) {
    return new LimitedOffsetRange.Tracker(restriction, new OffsetRangeTracker(restriction.getRange()), true);
  }

  @GetRestrictionCoder
  public Coder<LimitedOffsetRange> restrictionCoder() {
    return LimitedOffsetRange.Coder.of();
  }

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
    return new WatermarkEstimators.WallTime(state.isBefore(BoundedWindow.TIMESTAMP_MIN_VALUE) ? BoundedWindow.TIMESTAMP_MIN_VALUE : state);
  }
}
