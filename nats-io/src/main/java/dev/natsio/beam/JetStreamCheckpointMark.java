package dev.natsio.beam;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.Objects;
import org.apache.beam.sdk.coders.AtomicCoder;
import org.apache.beam.sdk.coders.VarLongCoder;
import org.apache.beam.sdk.io.UnboundedSource;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * The position of a {@link JetStreamUnboundedSource} reader in a runner's checkpoint: the next
 * stream sequence to read, and the watermark reached, so a restored reader neither repeats nor
 * skips a message and its watermark does not fall back.
 *
 * <p>The next sequence is absent when the reader never reached the server; the restored reader
 * then resolves its start from the read's configuration, as a new one would. Nothing is
 * acknowledged on finalization: the read's ordered consumer is ack-none, and the position lives
 * here, not on the server.
 */
final class JetStreamCheckpointMark implements UnboundedSource.CheckpointMark {
  private final @Nullable Long nextSequence;
  private final Instant watermark;

  JetStreamCheckpointMark(@Nullable Long nextSequence, Instant watermark) {
    this.nextSequence = nextSequence;
    this.watermark = watermark;
  }

  @Nullable Long getNextSequence() {
    return nextSequence;
  }

  Instant getWatermark() {
    return watermark;
  }

  @Override
  public void finalizeCheckpoint() {}

  @Override
  public boolean equals(@Nullable Object other) {
    if (!(other instanceof JetStreamCheckpointMark)) {
      return false;
    }
    JetStreamCheckpointMark that = (JetStreamCheckpointMark) other;
    return Objects.equals(nextSequence, that.nextSequence) && watermark.equals(that.watermark);
  }

  @Override
  public int hashCode() {
    return Objects.hash(nextSequence, watermark);
  }

  @Override
  public String toString() {
    return "JetStreamCheckpointMark{nextSequence=" + nextSequence + ", watermark=" + watermark + "}";
  }

  /** Next sequence + 1 (0 when absent) and watermark millis, as variable-length longs. */
  static final class Coder extends AtomicCoder<JetStreamCheckpointMark> {
    private static final Coder INSTANCE = new Coder();
    private static final VarLongCoder LONGS = VarLongCoder.of();

    static Coder of() {
      return INSTANCE;
    }

    @Override
    public void encode(JetStreamCheckpointMark mark, OutputStream out) throws IOException {
      LONGS.encode(mark.nextSequence == null ? 0L : mark.nextSequence + 1, out);
      LONGS.encode(mark.watermark.getMillis(), out);
    }

    @Override
    public JetStreamCheckpointMark decode(InputStream in) throws IOException {
      long sequencePlusOne = LONGS.decode(in);
      return new JetStreamCheckpointMark(sequencePlusOne == 0 ? null : sequencePlusOne - 1, new Instant(LONGS.decode(in)));
    }

    @Override
    public void verifyDeterministic() {}
  }
}
