package dev.natsio.beam;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.Serializable;
import java.util.Objects;
import org.apache.beam.sdk.coders.AtomicCoder;
import org.apache.beam.sdk.coders.VarLongCoder;
import org.apache.beam.sdk.io.range.OffsetRange;
import org.apache.beam.sdk.transforms.splittabledofn.RestrictionTracker;
import org.apache.beam.sdk.transforms.splittabledofn.SplitResult;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * The restriction of NatsIO's reads: an {@link OffsetRange} of positions, plus what is left of
 * the read's budget from {@code withMaxNumRecords} and {@code withMaxReadTime}.
 *
 * <p>A splittable DoFn cannot be wrapped in Beam's {@code Read.Unbounded.withMaxNumRecords} (that
 * works only for {@code UnboundedSource}), and a count or a deadline kept in the DoFn would be lost
 * at the first checkpoint. So the budget travels with the restriction: a checkpoint gives the
 * primary the records it already claimed and the residual the rest, and the deadline (fixed when
 * the initial restriction is made) is absolute. Positions are stream sequences for JetStream and a
 * running message count for Core subjects.
 */
final class LimitedOffsetRange implements Serializable {
  private static final long serialVersionUID = 1L;
  static final long NO_RECORD_LIMIT = Long.MAX_VALUE;

  private final OffsetRange range;
  private final long maxRecords;
  private final @Nullable Instant deadline;

  LimitedOffsetRange(OffsetRange range, long maxRecords, @Nullable Instant deadline) {
    this.range = range;
    this.maxRecords = maxRecords;
    this.deadline = deadline;
  }

  /** {@code range} with a read's {@code withMaxNumRecords} / {@code withMaxReadTime} (either may be absent), the time counted from now. */
  static LimitedOffsetRange withLimits(OffsetRange range, @Nullable Long maxNumRecords, org.joda.time.@Nullable Duration maxReadTime) {
    return new LimitedOffsetRange(
        range,
        maxNumRecords == null ? NO_RECORD_LIMIT : maxNumRecords,
        maxReadTime == null ? null : Instant.now().plus(maxReadTime));
  }

  static LimitedOffsetRange unlimited(OffsetRange range) {
    return new LimitedOffsetRange(range, NO_RECORD_LIMIT, null);
  }

  OffsetRange getRange() {
    return range;
  }

  /** Records this restriction may still output; {@link #NO_RECORD_LIMIT} for no limit. */
  long getMaxRecords() {
    return maxRecords;
  }

  /** When this restriction stops reading, whatever is left; null for never. */
  @Nullable Instant getDeadline() {
    return deadline;
  }

  boolean isLimited() {
    return maxRecords != NO_RECORD_LIMIT || deadline != null;
  }

  boolean deadlinePassed() {
    return deadline != null && !Instant.now().isBefore(deadline);
  }

  LimitedOffsetRange withRange(OffsetRange newRange) {
    return new LimitedOffsetRange(newRange, maxRecords, deadline);
  }

  @Override
  public boolean equals(@Nullable Object other) {
    if (!(other instanceof LimitedOffsetRange)) {
      return false;
    }
    LimitedOffsetRange that = (LimitedOffsetRange) other;
    return range.equals(that.range) && maxRecords == that.maxRecords && Objects.equals(deadline, that.deadline);
  }

  @Override
  public int hashCode() {
    return Objects.hash(range, maxRecords, deadline);
  }

  @Override
  public String toString() {
    return "LimitedOffsetRange{" + range
        + (maxRecords == NO_RECORD_LIMIT ? "" : ", maxRecords=" + maxRecords)
        + (deadline == null ? "" : ", deadline=" + deadline) + "}";
  }

  /** Encodes the range, the record budget and the deadline (millis, or absent). */
  static final class Coder extends AtomicCoder<LimitedOffsetRange> {
    private static final Coder INSTANCE = new Coder();
    private static final OffsetRange.Coder RANGE = new OffsetRange.Coder();
    private static final VarLongCoder LONG = VarLongCoder.of();

    static Coder of() {
      return INSTANCE;
    }

    @Override
    public void encode(LimitedOffsetRange value, OutputStream out) throws IOException {
      RANGE.encode(value.range, out);
      LONG.encode(value.maxRecords, out);
      out.write(value.deadline == null ? 0 : 1);
      if (value.deadline != null) {
        LONG.encode(value.deadline.getMillis(), out);
      }
    }

    @Override
    public LimitedOffsetRange decode(InputStream in) throws IOException {
      OffsetRange range = RANGE.decode(in);
      long maxRecords = LONG.decode(in);
      int hasDeadline = in.read();
      if (hasDeadline < 0) {
        throw new IOException("truncated LimitedOffsetRange");
      }
      Instant deadline = hasDeadline == 1 ? Instant.ofEpochMilli(LONG.decode(in)) : null;
      return new LimitedOffsetRange(range, maxRecords, deadline);
    }
  }

  /**
   * Tracks a {@link LimitedOffsetRange} by wrapping the tracker of its range ({@code
   * OffsetRangeTracker} or {@code GrowableOffsetRangeTracker}) and counting claims.
   *
   * <p>Once the record budget is spent or the deadline has passed, {@link #tryClaim} refuses and
   * marks the range done (by claiming its end), so the read finishes. A limited restriction is
   * split only at checkpoints (fraction 0), where the budget divides exactly; finer splits are
   * refused, as they would multiply the budget. So are any splits when {@code checkpointsOnly}
   * (Core subscriptions: every piece would read the same subscription).
   */
  static final class Tracker extends RestrictionTracker<LimitedOffsetRange, Long> implements RestrictionTracker.HasProgress {
    private final RestrictionTracker<OffsetRange, Long> delegate;
    private final LimitedOffsetRange restriction;
    private final boolean checkpointsOnly;
    private long claimed;
    private boolean exhausted;

    Tracker(LimitedOffsetRange restriction, RestrictionTracker<OffsetRange, Long> delegate, boolean checkpointsOnly) {
      this.restriction = restriction;
      this.delegate = delegate;
      this.checkpointsOnly = checkpointsOnly;
    }

    @Override
    public boolean tryClaim(Long position) {
      if (exhausted) {
        return false;
      }
      if (claimed >= restriction.getMaxRecords() || restriction.deadlinePassed()) {
        exhausted = true;
        delegate.tryClaim(Long.MAX_VALUE); // Claims the end: the range is done, whatever it still held.
        return false;
      }
      if (position == Long.MAX_VALUE) {
        exhausted = true;
      }
      boolean claimedIt = delegate.tryClaim(position);
      if (claimedIt) {
        claimed++;
      }
      return claimedIt;
    }

    @Override
    public LimitedOffsetRange currentRestriction() {
      return restriction.withRange(delegate.currentRestriction());
    }

    @Override
    public @Nullable SplitResult<LimitedOffsetRange> trySplit(double fractionOfRemainder) {
      if (exhausted || ((restriction.isLimited() || checkpointsOnly) && fractionOfRemainder != 0)) {
        return null;
      }
      SplitResult<OffsetRange> split = delegate.trySplit(fractionOfRemainder);
      if (split == null) {
        return null;
      }
      long max = restriction.getMaxRecords();
      long primaryBudget = max == NO_RECORD_LIMIT ? NO_RECORD_LIMIT : claimed;
      long residualBudget = max == NO_RECORD_LIMIT ? NO_RECORD_LIMIT : max - claimed;
      return SplitResult.of(
          new LimitedOffsetRange(split.getPrimary(), primaryBudget, restriction.getDeadline()),
          new LimitedOffsetRange(split.getResidual(), residualBudget, restriction.getDeadline()));
    }

    @Override
    public void checkDone() throws IllegalStateException {
      delegate.checkDone();
    }

    @Override
    public IsBounded isBounded() {
      return restriction.isLimited() ? IsBounded.BOUNDED : delegate.isBounded();
    }

    @Override
    public Progress getProgress() {
      if (restriction.getMaxRecords() != NO_RECORD_LIMIT) {
        return Progress.from(claimed, Math.max(0, restriction.getMaxRecords() - claimed));
      }
      return delegate instanceof HasProgress ? ((HasProgress) delegate).getProgress() : Progress.NONE;
    }

    @Override
    public String toString() {
      return "LimitedOffsetRange.Tracker{" + delegate + ", claimed=" + claimed + ", budget=" + restriction + "}";
    }
  }
}
