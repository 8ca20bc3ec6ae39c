package dev.natsio.beam;

import com.fasterxml.jackson.databind.annotation.JsonSerialize;
import com.fasterxml.jackson.databind.ser.std.ToStringSerializer;
import com.google.auto.value.AutoValue;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Objects;
import org.apache.beam.sdk.coders.DefaultCoder;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * One revision of one key of a JetStream Key/Value bucket, as {@link NatsIO#readKeyValue()} reads
 * it: the bucket, the key, the value, the revision (the stream sequence that stored it, increasing
 * across the whole bucket), what the revision did ({@link Operation#PUT}, {@link
 * Operation#DELETE}, {@link Operation#PURGE}) and when the server stored it.
 *
 * <p>Deletes and purges are revisions of their own, with an empty value: a reader sees a key go
 * away instead of silently missing it.
 *
 * <p>Its default coder, {@link NatsKeyValueCoder}, is deterministic and carries a Beam schema
 * ({@link NatsKeyValueCoder#SCHEMA}), so a {@code PCollection<NatsKeyValue>} can go into {@code
 * Convert.toRows()}, {@code Select} or Beam SQL, and be grouped by.
 */
@AutoValue
@DefaultCoder(NatsKeyValueCoder.class)
public abstract class NatsKeyValue {

  /** What a revision did to its key. */
  public enum Operation {
    /** The key was set to the value. */
    PUT,
    /** The key was deleted; earlier revisions may remain in the bucket's history. */
    DELETE,
    /** The key was purged: its earlier revisions were removed from the bucket. */
    PURGE
  }

  /** The bucket the key belongs to. */
  public abstract String getBucket();

  /** The key. */
  public abstract String getKey();

  /** The value; empty for deletes and purges. Treat it as read-only: it is shared, not copied. */
  @SuppressWarnings("mutable")
  public abstract byte[] getValue();

  /** The revision: the stream sequence of the message that stored it. */
  public abstract long getRevision();

  /** What this revision did. */
  public abstract Operation getOperation();

  /** When the server stored this revision (also the element's timestamp as read). */
  // ISO-8601 in Jackson's JSON, as for NatsMessage: Beam's BadRecord renders with a plain ObjectMapper.
  @JsonSerialize(using = ToStringSerializer.class)
  public abstract Instant getCreated();

  /** An entry with every field, as the reader makes it. */
  public static NatsKeyValue of(
      String bucket, String key, byte[] value, long revision, Operation operation, Instant created) {
    return new AutoValue_NatsKeyValue(
        Objects.requireNonNull(bucket, "bucket"),
        Objects.requireNonNull(key, "key"),
        Objects.requireNonNull(value, "value"),
        revision,
        Objects.requireNonNull(operation, "operation"),
        Objects.requireNonNull(created, "created"));
  }

  /** The value decoded as UTF-8, for logging and tests. */
  public String getValueAsString() {
    return new String(getValue(), StandardCharsets.UTF_8);
  }

  @Override
  public final boolean equals(@Nullable Object other) {
    if (this == other) {
      return true;
    }
    if (!(other instanceof NatsKeyValue)) {
      return false;
    }
    NatsKeyValue that = (NatsKeyValue) other;
    return getBucket().equals(that.getBucket())
        && getKey().equals(that.getKey())
        && Arrays.equals(getValue(), that.getValue())
        && getRevision() == that.getRevision()
        && getOperation() == that.getOperation()
        && getCreated().equals(that.getCreated());
  }

  @Override
  public final int hashCode() {
    return Objects.hash(getBucket(), getKey(), Arrays.hashCode(getValue()), getRevision(), getOperation(), getCreated());
  }

  @Override
  public final String toString() {
    return "NatsKeyValue{bucket=" + getBucket() + ", key=" + getKey() + ", revision=" + getRevision()
        + ", operation=" + getOperation() + ", valueBytes=" + getValue().length + ", created=" + getCreated() + "}";
  }
}
