package dev.natsio.beam;

import com.fasterxml.jackson.databind.annotation.JsonSerialize;
import com.fasterxml.jackson.databind.ser.std.ToStringSerializer;
import com.google.auto.value.AutoValue;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import org.apache.beam.sdk.coders.DefaultCoder;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * One NATS message, as {@link NatsIO#read()} produces it and {@link NatsIO#write()} publishes it.
 *
 * <p>Read from JetStream, a message carries its stream, its stream sequence and the time the
 * server stored it. Read from a Core subject, the stream is null, the sequence 0 and the timestamp
 * the time it was received. Messages built with {@link #create} for writing have neither. Read
 * through a durable consumer ({@code withConsumer}), a message also carries how many times the
 * server has delivered it ({@link #getDeliveredCount()}): more than 1 marks a redelivery.
 *
 * <p>Its default coder, {@link NatsMessageCoder}, is a compact deterministic binary coder that also
 * carries a Beam schema ({@link NatsMessageCoder#SCHEMA}), so a {@code PCollection<NatsMessage>}
 * can go straight into {@code Convert.toRows()}, {@code Select} or Beam SQL.
 */
@AutoValue
@DefaultCoder(NatsMessageCoder.class)
public abstract class NatsMessage {

  /** The subject the message was published to. */
  public abstract String getSubject();

  /** The payload. Treat it as read-only: it is shared, not copied. */
  @SuppressWarnings("mutable")
  public abstract byte[] getPayload();

  /** Headers in key order; empty, never null. A header may repeat, hence the list of values. */
  public abstract Map<String, List<String>> getHeaders();

  /** The JetStream stream the message was read from; null for Core messages and new ones. */
  public abstract @Nullable String getStream();

  /** The stream sequence; 0 for Core messages and new ones. */
  public abstract long getSequence();

  /** JetStream publish time, or the receive time of a Core message; null for new messages. */
  // ISO-8601 in Jackson's JSON: Beam's BadRecord renders records with a plain ObjectMapper, which
  // cannot serialize Joda types and would log an error for every bad record.
  @JsonSerialize(using = ToStringSerializer.class)
  public abstract @Nullable Instant getTimestamp();

  /**
   * How many times a durable consumer has delivered this message: 1 the first time, more when it
   * was redelivered because an earlier delivery was not acknowledged in time (so it may have been
   * output before). 0 for messages not read through a durable consumer.
   */
  public abstract long getDeliveredCount();

  /** True when a durable consumer delivered this message before ({@code getDeliveredCount() > 1}). */
  public boolean isRedelivered() {
    return getDeliveredCount() > 1;
  }

  /** A message to publish with no headers. */
  public static NatsMessage create(String subject, byte[] payload) {
    return of(subject, payload, Collections.emptyMap(), null, 0L, null);
  }

  /** A message to publish with headers. */
  public static NatsMessage create(String subject, byte[] payload, Map<String, List<String>> headers) {
    return of(subject, payload, headers, null, 0L, null);
  }

  /** A message with every field, as a reader produces it. Headers are copied into key order. */
  public static NatsMessage of(
      String subject,
      byte[] payload,
      Map<String, List<String>> headers,
      @Nullable String stream,
      long sequence,
      @Nullable Instant timestamp) {
    return of(subject, payload, headers, stream, sequence, timestamp, 0L);
  }

  /** A message with every field, including the delivery count of a durable consumer. */
  public static NatsMessage of(
      String subject,
      byte[] payload,
      Map<String, List<String>> headers,
      @Nullable String stream,
      long sequence,
      @Nullable Instant timestamp,
      long deliveredCount) {
    Objects.requireNonNull(subject, "subject");
    Objects.requireNonNull(payload, "payload");
    return new AutoValue_NatsMessage(subject, payload, sortedCopy(headers), stream, sequence, timestamp, deliveredCount);
  }

  /** The payload decoded as UTF-8, for logging and tests. */
  public String getPayloadAsString() {
    return new String(getPayload(), StandardCharsets.UTF_8);
  }

  @Override
  public final boolean equals(@Nullable Object other) {
    if (this == other) {
      return true;
    }
    if (!(other instanceof NatsMessage)) {
      return false;
    }
    NatsMessage that = (NatsMessage) other;
    return getSubject().equals(that.getSubject())
        && Arrays.equals(getPayload(), that.getPayload())
        && getHeaders().equals(that.getHeaders())
        && Objects.equals(getStream(), that.getStream())
        && getSequence() == that.getSequence()
        && Objects.equals(getTimestamp(), that.getTimestamp())
        && getDeliveredCount() == that.getDeliveredCount();
  }

  @Override
  public final int hashCode() {
    return Objects.hash(
        getSubject(), Arrays.hashCode(getPayload()), getHeaders(), getStream(), getSequence(), getTimestamp(), getDeliveredCount());
  }

  @Override
  public final String toString() {
    return "NatsMessage{subject=" + getSubject()
        + (getStream() == null ? "" : ", stream=" + getStream() + ", sequence=" + getSequence())
        + ", payloadBytes=" + getPayload().length
        + (getHeaders().isEmpty() ? "" : ", headers=" + getHeaders().keySet())
        + (getTimestamp() == null ? "" : ", timestamp=" + getTimestamp())
        + (getDeliveredCount() == 0 ? "" : ", deliveredCount=" + getDeliveredCount())
        + "}";
  }

  private static Map<String, List<String>> sortedCopy(@Nullable Map<String, List<String>> headers) {
    if (headers == null || headers.isEmpty()) {
      return Collections.emptyMap();
    }
    TreeMap<String, List<String>> copy = new TreeMap<>();
    headers.forEach((key, values) -> copy.put(key, List.copyOf(values)));
    return Collections.unmodifiableMap(copy);
  }
}
