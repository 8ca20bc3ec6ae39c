package dev.natsio.beam;

import io.nats.client.Message;
import io.nats.client.impl.Headers;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.transforms.errorhandling.BadRecordRouter;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * Turns {@link NatsMessage}s into jnats messages for {@link WriteToCoreDoFn} and {@link
 * WriteToJetStreamDoFn}, and reports the ones NATS will not take: to the bad-record handler when
 * the write has one, otherwise by failing the bundle with a {@link NatsIOException} that names the
 * subject and the reason.
 */
final class OutgoingMessages {
  static final String MESSAGE_ID_HEADER = "Nats-Msg-Id";

  private OutgoingMessages() {}

  /**
   * The jnats message for {@code message} on {@code subject}. With {@code replaceMessageId} the
   * message's own {@code Nats-Msg-Id} header is dropped, so the id the write sets is the only one.
   */
  static Message toNats(NatsMessage message, String subject, boolean replaceMessageId) {
    return io.nats.client.impl.NatsMessage.builder()
        .subject(subject)
        .headers(headersOf(message.getHeaders(), replaceMessageId))
        .data(message.getPayload())
        .build();
  }

  /** The id carried in the message's own {@code Nats-Msg-Id} header, or null. */
  static @Nullable String ownMessageId(NatsMessage message) {
    List<String> ids = message.getHeaders().get(MESSAGE_ID_HEADER);
    return ids == null || ids.isEmpty() ? null : ids.get(0);
  }

  private static @Nullable Headers headersOf(Map<String, List<String>> headers, boolean dropMessageId) {
    if (headers.isEmpty() || (dropMessageId && headers.size() == 1 && headers.containsKey(MESSAGE_ID_HEADER))) {
      return null;
    }
    Headers natsHeaders = new Headers();
    headers.forEach((key, values) -> {
      if (!(dropMessageId && key.equals(MESSAGE_ID_HEADER))) {
        natsHeaders.add(key, values);
      }
    });
    return natsHeaders;
  }

  /** Where a write sends messages NATS refuses. */
  static final class Rejections implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    private final @Nullable BadRecordRouter router;

    /** Routes to the bad-record output when {@code routeBadRecords}, otherwise fails the bundle. */
    Rejections(boolean routeBadRecords) {
      this.router = routeBadRecords ? BadRecordRouter.RECORDING_ROUTER : null;
    }

    boolean routed() {
      return router != null;
    }

    /** Reports a refusal found while processing {@code message}. */
    void reject(DoFn.MultiOutputReceiver out, NatsMessage message, Exception cause, String description) throws Exception {
      if (router == null) {
        throw failure(description, cause);
      }
      router.route(out, message, NatsMessageCoder.of(), cause, description);
    }

    /** Reports a refusal found when the bundle finishes, into the message's own window. */
    void reject(DoFn<NatsMessage, ?>.FinishBundleContext context, NatsMessage message, Exception cause, String description,
        BoundedWindow window) throws Exception {
      if (router == null) {
        throw failure(description, cause);
      }
      router.route(context, message, NatsMessageCoder.of(), cause, description, window);
    }

    static NatsIOException failure(String description, Exception cause) {
      return new NatsIOException(
          description + ". To send such messages elsewhere instead of failing the pipeline, give NatsIO.write() "
              + "withBadRecordErrorHandler(...).",
          cause);
    }
  }

  /** The subject for {@code message}; a function that gives none makes the message a bad record. */
  static String subjectOf(SerializableFunction<NatsMessage, String> subjectFn, NatsMessage message) {
    String subject = apply(subjectFn, message, "subject");
    if (subject == null || subject.isEmpty()) {
      throw new IllegalArgumentException("No subject to publish " + message + " to: the message has none and no"
          + " withSubject / withSubjectFn gave one");
    }
    return subject;
  }

  /** Why a message cannot be sent at all, naming its subject when it has one. */
  static String describeUnsendable(@Nullable String subject, Exception cause) {
    return subject == null
        ? String.valueOf(cause.getMessage())
        : "NATS refused the message for subject '" + subject + "' before sending it: " + cause.getMessage();
  }

  /** Applies a user function, naming it in the error if it throws. */
  static @Nullable String apply(SerializableFunction<NatsMessage, String> fn, NatsMessage message, String what) {
    try {
      return fn.apply(message);
    } catch (RuntimeException e) {
      throw new UserFunctionException("The " + what + " function failed for " + message + ": " + e, e);
    }
  }

  /** A user's subject or message-id function threw: that message is a bad record. */
  static final class UserFunctionException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    UserFunctionException(String message, Throwable cause) {
      super(message, cause);
    }
  }
}
