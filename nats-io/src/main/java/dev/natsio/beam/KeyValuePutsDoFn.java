package dev.natsio.beam;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.coders.ByteArrayCoder;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.NullableCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.transforms.errorhandling.BadRecordRouter;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.TupleTag;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * The first step of {@link NatsIO#writeKeyValue()}: turns each {@code KV<key, value>} into the
 * JetStream publish that jnats's {@code KeyValue} would send, for NatsIO's JetStream write to
 * publish with its bounded in-flight window, retries and per-bundle acknowledgements.
 *
 * <h2>Messages</h2>
 *
 * <p>A put publishes the value to {@code $KV.<bucket>.<key>}; a null value publishes an empty
 * message with the header {@code KV-Operation: DEL}, which deletes the key. With an expected
 * revision the message carries {@code Nats-Expected-Last-Subject-Sequence}: the server stores it
 * only if the key's latest revision is that one (0: the key has no revision at all), and refuses it
 * otherwise, which the write reports as a bad record.
 *
 * <h2>Retries of compare-and-set puts</h2>
 *
 * <p>A put whose acknowledgement was lost, or whose bundle the runner retries, is published again.
 * For a plain put that stores the same value once more (a new revision, the same state). For a
 * compare-and-set put it would find its own earlier revision and be refused as a conflict, so such
 * a put also carries a {@code Nats-Msg-Id} made of the key, the expected revision and a digest of
 * the value: within the stream's duplicate window (2 minutes by default) the server acknowledges
 * the repeat as a duplicate with the original revision, which the server checks before the
 * expected revision.
 *
 * <h2>Refusals</h2>
 *
 * <p>A key NATS would refuse (see {@link KeyValueBuckets#invalidKeyReason}), a negative expected
 * revision, or an expected-revision function that throws, is refused here, before the element is
 * published: to the bad-record handler when the write has one, otherwise by failing the bundle
 * with an error naming the key.
 */
class KeyValuePutsDoFn extends DoFn<KV<String, byte[]>, NatsMessage> {
  static final TupleTag<NatsMessage> PUTS = new TupleTag<NatsMessage>() {};
  /** Encodes refused elements for the bad-record handler; keys and values may be null. */
  static final Coder<KV<String, byte[]>> ELEMENT_CODER =
      KvCoder.of(NullableCoder.of(StringUtf8Coder.of()), NullableCoder.of(ByteArrayCoder.of()));
  private static final byte[] EMPTY = new byte[0];

  private final String bucket;
  private final @Nullable SerializableFunction<KV<String, byte[]>, Long> expectedRevisionFn;
  private final @Nullable BadRecordRouter router;

  KeyValuePutsDoFn(
      String bucket, @Nullable SerializableFunction<KV<String, byte[]>, Long> expectedRevisionFn, boolean routeBadRecords) {
    this.bucket = bucket;
    this.expectedRevisionFn = expectedRevisionFn;
    this.router = routeBadRecords ? BadRecordRouter.RECORDING_ROUTER : null;
  }

  @ProcessElement
  public void processElement(@Element KV<String, byte[]> element, MultiOutputReceiver out) throws Exception {
    String key = element.getKey();
    String invalid = KeyValueBuckets.invalidKeyReason(key);
    if (invalid != null) {
      refuse(out, element, new IllegalArgumentException(invalid),
          "Key/Value write to bucket '" + bucket + "' refused key '" + key + "': " + invalid);
      return;
    }
    Long expected;
    try {
      expected = expectedRevisionFn == null ? null : expectedRevisionFn.apply(element);
    } catch (RuntimeException e) {
      refuse(out, element, e, "The expected-revision function failed for key '" + key + "' of bucket '" + bucket + "': " + e);
      return;
    }
    if (expected != null && expected < 0) {
      refuse(out, element, new IllegalArgumentException("negative revision " + expected),
          "The expected-revision function gave " + expected + " for key '" + key + "' of bucket '" + bucket
              + "': revisions are 1 or more, 0 meaning the key has none, null meaning no check");
      return;
    }
    byte[] value = element.getValue();
    Map<String, List<String>> headers = new TreeMap<>();
    if (value == null) {
      headers.put(KeyValueBuckets.OPERATION_HEADER, List.of(KeyValueBuckets.DELETE));
    }
    if (expected != null) {
      headers.put(KeyValueBuckets.EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER, List.of(Long.toString(expected)));
      headers.put(OutgoingMessages.MESSAGE_ID_HEADER, List.of(compareAndSetId(key, expected, value)));
    }
    out.get(PUTS).output(NatsMessage.create(KeyValueBuckets.subjectOf(bucket, key), value == null ? EMPTY : value, headers));
  }

  /** The same for every attempt at the same put: key, expected revision and a digest of the value (or of the delete). */
  static String compareAndSetId(String key, long expected, byte @Nullable [] value) {
    MessageDigest digest;
    try {
      digest = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is missing from this JVM", e);
    }
    digest.update(value == null ? new byte[] {0} : new byte[] {1});
    if (value != null) {
      digest.update(value);
    }
    byte[] hash = digest.digest();
    return "kv-cas:" + key + "@" + expected + ":"
        + Base64.getUrlEncoder().withoutPadding().encodeToString(Arrays.copyOf(hash, 16));
  }

  private void refuse(MultiOutputReceiver out, KV<String, byte[]> element, Exception cause, String description)
      throws Exception {
    if (router == null) {
      throw new NatsIOException(
          description + ". Nothing was published for it. To send such elements elsewhere instead of failing the "
              + "pipeline, give NatsIO.writeKeyValue() withBadRecordErrorHandler(...).",
          cause);
    }
    router.route(out, element, ELEMENT_CODER, cause, description);
  }
}
