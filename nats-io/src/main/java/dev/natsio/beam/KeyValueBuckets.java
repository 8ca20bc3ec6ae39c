package dev.natsio.beam;

import io.nats.client.support.Validator;
import java.util.List;
import java.util.Map;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * How a JetStream Key/Value bucket lies on its stream, for {@link NatsIO#readKeyValue()} and
 * {@link NatsIO#writeKeyValue()}: bucket {@code b} is stream {@code KV_b}, key {@code k} is subject
 * {@code $KV.b.k}, a revision is the stream sequence of the message that stored it, and the {@code
 * KV-Operation} header marks deletes ({@code DEL}) and purges ({@code PURGE}); a message without it
 * is a put. These are the names jnats's own {@code KeyValue} uses, so buckets written by either
 * are read by both.
 *
 * <p>Names are checked here with jnats's own validators (the characters NATS accepts in a bucket
 * name or a key), plus what jnats 2.26 lets through but a subject cannot hold: an empty token
 * ({@code a..b}, {@code a.}). Every error names the bucket or key and says what is allowed.
 */
final class KeyValueBuckets {
  static final String STREAM_PREFIX = "KV_";
  static final String OPERATION_HEADER = "KV-Operation";
  static final String DELETE = "DEL";
  static final String PURGE = "PURGE";
  /** The header a JetStream publish carries to be stored only if its subject is at this sequence. */
  static final String EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER = "Nats-Expected-Last-Subject-Sequence";

  private KeyValueBuckets() {}

  static String streamOf(String bucket) {
    return STREAM_PREFIX + bucket;
  }

  static String subjectPrefix(String bucket) {
    return "$KV." + bucket + ".";
  }

  static String subjectOf(String bucket, String key) {
    return subjectPrefix(bucket) + key;
  }

  /** The key stored at {@code subject} of {@code bucket}'s stream. */
  static String keyOf(String bucket, String subject) {
    String prefix = subjectPrefix(bucket);
    if (!subject.startsWith(prefix)) {
      throw new NatsIOException(
          "Message on subject '" + subject + "' in the stream of Key/Value bucket '" + bucket + "' is not a key of the "
              + "bucket (keys are stored as " + prefix + "<key>). Was the stream " + streamOf(bucket) + " made by hand?");
    }
    return subject.substring(prefix.length());
  }

  /** The operation recorded by a message with these headers. */
  static NatsKeyValue.Operation operationOf(Map<String, List<String>> headers) {
    List<String> values = headers.get(OPERATION_HEADER);
    String value = values == null || values.isEmpty() ? null : values.get(0);
    if (DELETE.equals(value)) {
      return NatsKeyValue.Operation.DELETE;
    }
    if (PURGE.equals(value)) {
      return NatsKeyValue.Operation.PURGE;
    }
    return NatsKeyValue.Operation.PUT;
  }

  /** The bucket of a {@code KV_<bucket>} stream, or null when {@code stream} is no bucket's. */
  static @Nullable String bucketOf(String stream) {
    return stream.startsWith(STREAM_PREFIX) && stream.length() > STREAM_PREFIX.length()
        ? stream.substring(STREAM_PREFIX.length())
        : null;
  }

  /** The error for a bucket whose stream does not exist on {@code servers}. */
  static String missingBucket(String bucket, String servers) {
    return "Key/Value bucket '" + bucket + "' does not exist on " + servers + " (no stream " + streamOf(bucket)
        + "). Create it first (for example 'nats kv add " + bucket + "', or jnats's KeyValueManagement.create), "
        + "or correct the name given to withBucket(...).";
  }

  /** Refuses a bucket name NATS would refuse, naming it. */
  static void validateBucket(String transform, @Nullable String bucket) {
    if (bucket == null || bucket.isEmpty()) {
      throw new IllegalArgumentException(transform + " needs a bucket: call withBucket(\"name\").");
    }
    try {
      Validator.validateBucketName(bucket, true);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(
          transform + " withBucket(\"" + bucket + "\"): not a Key/Value bucket name; use only A-Z, a-z, 0-9, '-' and '_'.", e);
    }
  }

  /** Refuses a key filter (wildcards allowed) NATS would refuse, naming it. */
  static void validateKeyFilter(String transform, @Nullable String filter) {
    if (filter == null || filter.isEmpty() || hasEmptyToken(filter)) {
      throw new IllegalArgumentException(
          transform + " withKeys(\"" + filter + "\"): not a key filter; give keys like \"app.>\" or \"app.*.color\".");
    }
    try {
      Validator.validateKvKeyWildcardAllowedRequired(filter);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(
          transform + " withKeys(\"" + filter + "\"): not a key filter. " + e.getMessage(), e);
    }
  }

  /**
   * Why {@code key} cannot be a key (null, empty, a character NATS refuses, a wildcard, an empty
   * token), or null when it can.
   */
  static @Nullable String invalidKeyReason(@Nullable String key) {
    if (key == null || key.isEmpty()) {
      return "a key cannot be null or empty";
    }
    if (hasEmptyToken(key)) {
      return "a key cannot end with '.' or hold '..' (NATS subjects have no empty tokens)";
    }
    try {
      Validator.validateNonWildcardKvKeyRequired(key);
      return null;
    } catch (IllegalArgumentException e) {
      return "keys may only hold A-Z, a-z, 0-9, '-', '_', '/', '=' and '.' and cannot start with '.'";
    }
  }

  private static boolean hasEmptyToken(String key) {
    return key.startsWith(".") || key.endsWith(".") || key.contains("..");
  }
}
