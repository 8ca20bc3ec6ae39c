package dev.natsio.beam;

import com.google.auto.value.AutoValue;
import org.apache.beam.sdk.coders.DefaultCoder;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * What JetStream answered for one message {@link NatsIO#write()} published: the stream that
 * stored it, its sequence there, and whether it was a duplicate of a message already stored with
 * the same message id (then the sequence is the original's and nothing new was stored).
 *
 * <p>Its default coder, {@link NatsPublishResultCoder}, is deterministic, so results can be
 * grouped by key.
 */
@AutoValue
@DefaultCoder(NatsPublishResultCoder.class)
public abstract class NatsPublishResult {

  /** The subject the message was published to. */
  public abstract String getSubject();

  /** The stream that stored (or had already stored) the message. */
  public abstract String getStream();

  /** The message's stream sequence; for a duplicate, the sequence of the copy stored first. */
  public abstract long getSequence();

  /** True when the stream already held a message with this id inside its duplicate window. */
  public abstract boolean isDuplicate();

  /** The {@code Nats-Msg-Id} the message was published with, or null for none. */
  public abstract @Nullable String getMessageId();

  /** A result as the write reports it; for tests and for code that builds results itself. */
  public static NatsPublishResult create(
      String subject, String stream, long sequence, boolean duplicate, @Nullable String messageId) {
    return new AutoValue_NatsPublishResult(subject, stream, sequence, duplicate, messageId);
  }
}
