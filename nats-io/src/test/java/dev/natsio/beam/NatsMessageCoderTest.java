package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.instanceOf;
import static org.hamcrest.Matchers.not;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.CoderRegistry;
import org.apache.beam.sdk.schemas.SchemaCoder;
import org.apache.beam.sdk.testing.CoderProperties;
import org.apache.beam.sdk.util.CoderUtils;
import org.apache.beam.sdk.values.Row;
import org.joda.time.Instant;
import org.junit.Test;

/** NatsMessage's default coder: round trips, determinism, and its schema. */
public class NatsMessageCoderTest {
  private static final NatsMessage READ =
      NatsMessage.of("orders.eu", bytes("hello"), Map.of("b", List.of("2"), "a", List.of("1", "x")), "orders", 42L, new Instant(1_700_000_000_123L));
  private static final NatsMessage NEW = NatsMessage.create("out", new byte[0]);
  private static final NatsMessage REDELIVERED =
      NatsMessage.of("orders.eu", bytes("hello"), headersWithEmptyLast(), "orders", 42L, new Instant(1_700_000_000_123L), 3L);
  private static final NatsMessage DELIVERED_ONLY = NatsMessage.of("s", new byte[0], Map.of("k", List.of("")), null, 0L, null, 1L);

  @Test
  public void readAndNewMessagesRoundTrip() throws Exception {
    CoderProperties.coderDecodeEncodeEqual(NatsMessageCoder.of(), READ);
    CoderProperties.coderDecodeEncodeEqual(NatsMessageCoder.of(), NEW);
  }

  /** The encoding is in checkpoints and shuffles: a new version must decode what an old one wrote. */
  @Test
  public void encodingIsStable() throws Exception {
    assertThat(java.util.HexFormat.of().formatHex(CoderUtils.encodeToByteArray(NatsMessageCoder.of(), READ)),
        equalTo("03000000096f72646572732e65750000000568656c6c6f000000000000002a000000066f72646572730000018bcfe5687b"
            + "00000002000000016100000002000000013100000001780000000162000000010000000132"));
    assertThat(java.util.HexFormat.of().formatHex(CoderUtils.encodeToByteArray(NatsMessageCoder.of(), NEW)),
        equalTo("00000000036f757400000000000000000000000000000000"));
  }

  @Test
  public void nestedInAnotherCoderReadsNoFurtherThanItsOwnBytes() throws Exception {
    CoderProperties.coderDecodeEncodeEqual(
        org.apache.beam.sdk.coders.ListCoder.of(NatsMessageCoder.of()), List.of(READ, NEW, READ));
    CoderProperties.coderDecodeEncodeEqual(
        org.apache.beam.sdk.coders.KvCoder.of(NatsMessageCoder.of(), NatsMessageCoder.of()),
        org.apache.beam.sdk.values.KV.of(NEW, READ));
  }

  /**
   * Delivered count (presence bit 4, a long after the timestamp) and the edges of reading headers:
   * a header with no values, last or not, and empty strings. Pinned from the DataOutputStream coder.
   */
  @Test
  public void encodingWithDeliveredCountAndHeadersIsStable() throws Exception {
    assertThat(java.util.HexFormat.of().formatHex(CoderUtils.encodeToByteArray(NatsMessageCoder.of(), REDELIVERED)),
        equalTo("07000000096f72646572732e65750000000568656c6c6f000000000000002a000000066f72646572730000018bcfe5687b"
            + "00000000000000030000000200000001610000000200000001310000000178000000016200000000"));
    assertThat(java.util.HexFormat.of().formatHex(CoderUtils.encodeToByteArray(NatsMessageCoder.of(), DELIVERED_ONLY)),
        equalTo("040000000173000000000000000000000000000000000000000100000001000000016b0000000100000000"));
  }

  /** Decode reads ahead to the next length where one must follow: a message after this one must still decode. */
  @Test
  public void messagesWithDeliveredCountAndHeadersRoundTripNested() throws Exception {
    Map<String, List<String>> noValuesFirst = new LinkedHashMap<>();
    noValuesFirst.put("a", List.of());
    noValuesFirst.put("b", List.of("1", "", "3"));
    NatsMessage noValuesNotLast =
        NatsMessage.of("s", bytes("p"), noValuesFirst, null, 9L, new Instant(5L), 2L);
    NatsMessage oneHeader =
        NatsMessage.of("s", bytes("p"), Map.of("Nats-Msg-Id", List.of("id-1")), "orders", 1L, null, 1L);
    for (NatsMessage message : List.of(REDELIVERED, DELIVERED_ONLY, noValuesNotLast, oneHeader)) {
      CoderProperties.coderDecodeEncodeEqual(NatsMessageCoder.of(), message);
    }
    CoderProperties.coderDecodeEncodeEqual(
        org.apache.beam.sdk.coders.ListCoder.of(NatsMessageCoder.of()),
        List.of(REDELIVERED, DELIVERED_ONLY, noValuesNotLast, oneHeader, READ, NEW, REDELIVERED));
    CoderProperties.coderDecodeEncodeEqual(
        org.apache.beam.sdk.coders.KvCoder.of(NatsMessageCoder.of(), NatsMessageCoder.of()),
        org.apache.beam.sdk.values.KV.of(REDELIVERED, DELIVERED_ONLY));
    CoderProperties.coderDecodeEncodeEqual(
        org.apache.beam.sdk.coders.KvCoder.of(NatsMessageCoder.of(), org.apache.beam.sdk.coders.VarLongCoder.of()),
        org.apache.beam.sdk.values.KV.of(DELIVERED_ONLY, 7L));
  }

  @Test
  public void truncatedEncodingFailsToDecode() throws Exception {
    byte[] bytes = CoderUtils.encodeToByteArray(NatsMessageCoder.of(), REDELIVERED);
    for (int length = 0; length < bytes.length; length++) {
      byte[] truncated = java.util.Arrays.copyOf(bytes, length);
      // Every prefix ends inside one of decode's reads.
      org.junit.Assert.assertThrows(
          "the first " + length + " of " + bytes.length + " bytes",
          java.io.EOFException.class,
          () -> NatsMessageCoder.of().decode(new java.io.ByteArrayInputStream(truncated)));
    }
  }

  /** How a batch reads its messages: in place, one after another, each exactly as the stream decode reads it. */
  @Test
  public void messagesDecodeInPlaceOneAfterAnotherFromOneBuffer() throws Exception {
    List<NatsMessage> messages = List.of(REDELIVERED, NEW, DELIVERED_ONLY, READ);
    java.io.ByteArrayOutputStream encoded = new java.io.ByteArrayOutputStream();
    for (NatsMessage message : messages) {
      encoded.write(CoderUtils.encodeToByteArray(NatsMessageCoder.of(), message));
    }
    java.nio.ByteBuffer buffer = java.nio.ByteBuffer.wrap(encoded.toByteArray());
    for (NatsMessage message : messages) {
      assertThat(NatsMessageCoder.decode(buffer), equalTo(message));
    }
    assertThat(buffer.remaining(), equalTo(0));
  }

  @Test
  public void truncatedEncodingFailsToDecodeInPlaceWithoutReadingPastTheBuffer() throws Exception {
    byte[] bytes = CoderUtils.encodeToByteArray(NatsMessageCoder.of(), REDELIVERED);
    for (int length = 0; length < bytes.length; length++) {
      java.nio.ByteBuffer truncated = java.nio.ByteBuffer.wrap(bytes, 0, length);
      org.junit.Assert.assertThrows(
          "the first " + length + " of " + bytes.length + " bytes",
          java.io.EOFException.class,
          () -> NatsMessageCoder.decode(truncated));
    }
  }

  @Test
  public void aCorruptPayloadLengthFailsToDecodeInPlaceInsteadOfAllocatingIt() throws Exception {
    byte[] bytes = CoderUtils.encodeToByteArray(NatsMessageCoder.of(), NEW); // presence, "out" with its length, payload length
    java.nio.ByteBuffer.wrap(bytes).putInt(1 + 4 + 3, Integer.MAX_VALUE - 16);
    org.junit.Assert.assertThrows(java.io.EOFException.class, () -> NatsMessageCoder.decode(java.nio.ByteBuffer.wrap(bytes)));
  }

  @Test
  public void headerValuesLongerThan64KiBRoundTrip() throws Exception {
    String big = "v".repeat(70_000);
    CoderProperties.coderDecodeEncodeEqual(NatsMessageCoder.of(), NatsMessage.create("s", bytes("p"), Map.of("k", List.of(big))));
  }

  @Test
  public void equalMessagesEncodeEquallyWhateverTheHeaderOrder() throws Exception {
    Map<String, List<String>> forward = new LinkedHashMap<>();
    forward.put("a", List.of("1"));
    forward.put("b", List.of("2"));
    Map<String, List<String>> backward = new LinkedHashMap<>();
    backward.put("b", List.of("2"));
    backward.put("a", List.of("1"));
    NatsMessage first = NatsMessage.create("s", bytes("p"), forward);
    NatsMessage second = NatsMessage.create("s", bytes("p"), backward);

    assertThat(first, equalTo(second));
    CoderProperties.coderDeterministic(NatsMessageCoder.of(), first, second);
  }

  @Test
  public void isTheRegisteredDefaultCoderAndASchemaCoder() throws Exception {
    Coder<NatsMessage> coder = CoderRegistry.createDefault().getCoder(NatsMessage.class);
    assertThat(coder, equalTo(NatsMessageCoder.of()));
    assertThat(coder, instanceOf(SchemaCoder.class));
    NatsMessageCoder.of().verifyDeterministic();
  }

  @Test
  public void rowFormCarriesEveryField() {
    Row row = NatsMessageCoder.of().getToRowFunction().apply(READ);

    assertThat(row.getString("subject"), equalTo("orders.eu"));
    assertThat(row.getBytes("payload"), equalTo(bytes("hello")));
    assertThat(row.getMap("headers").get("a"), equalTo(List.of("1", "x")));
    assertThat(row.getString("stream"), equalTo("orders"));
    assertThat(row.getInt64("sequence"), equalTo(42L));
    assertThat(row.getDateTime("timestamp").getMillis(), equalTo(1_700_000_000_123L));
    assertThat(NatsMessageCoder.of().getFromRowFunction().apply(row), equalTo(READ));
  }

  @Test
  public void differentPayloadsAreDifferentMessages() throws Exception {
    NatsMessage other = NatsMessage.create("out", bytes("x"));
    assertThat(CoderUtils.encodeToByteArray(NatsMessageCoder.of(), other), not(equalTo(CoderUtils.encodeToByteArray(NatsMessageCoder.of(), NEW))));
    assertThat(other, not(equalTo(NEW)));
  }

  /** "a": ["1", "x"], then "b" with no values: the last header, with nothing after its value count. */
  private static Map<String, List<String>> headersWithEmptyLast() {
    Map<String, List<String>> headers = new LinkedHashMap<>();
    headers.put("b", List.of());
    headers.put("a", List.of("1", "x"));
    return headers;
  }

  private static byte[] bytes(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }
}
