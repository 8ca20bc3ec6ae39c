package dev.natsio.beam;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.coders.CoderProvider;
import org.apache.beam.sdk.coders.CoderProviders;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.Schema.FieldType;
import org.apache.beam.sdk.schemas.SchemaCoder;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.values.Row;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.apache.beam.sdk.coders.DefaultCoder;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * The default coder of {@link NatsMessage}: a compact, deterministic binary encoding that is also
 * a {@link SchemaCoder}, so the collection has a Beam schema.
 *
 * <h2>Encoding</h2>
 *
 * <p>A presence byte (bit 0: stream, bit 1: timestamp, bit 2: delivered count), the subject, the
 * payload, the sequence, the stream, timestamp millis and delivered count when present, then the
 * header count and each header's key, value count and values. Ints and longs are big-endian;
 * strings are UTF-8 and, like the payload, prefixed with their length as an int. A delivered count
 * of 0 (every message not read through a durable consumer) is absent, so such messages encode
 * exactly as before the field existed. Headers are held in key order, so equal messages encode
 * to equal bytes: the coder is deterministic and can be used in keys.
 *
 * <h2>Schema</h2>
 *
 * <p>Extending {@link SchemaCoder} makes {@code PCollection.hasSchema()} true without a schema
 * provider, whose generic row coder would be several times slower than this one: the row form
 * ({@link #SCHEMA}) is used only by schema transforms that ask for it.
 */
public final class NatsMessageCoder extends SchemaCoder<NatsMessage> {
  /** The row form of a message: subject, payload, headers, stream, sequence, timestamp, delivered count. */
  public static final Schema SCHEMA =
      Schema.builder()
          .addStringField("subject")
          .addByteArrayField("payload")
          .addMapField("headers", FieldType.STRING, FieldType.array(FieldType.STRING))
          .addNullableField("stream", FieldType.STRING)
          .addInt64Field("sequence")
          .addNullableField("timestamp", FieldType.DATETIME)
          .addInt64Field("deliveredCount")
          .build();

  private static final NatsMessageCoder INSTANCE = new NatsMessageCoder();
  private static final int HAS_STREAM = 1;
  private static final int HAS_TIMESTAMP = 2;
  private static final int HAS_DELIVERED_COUNT = 4;

  private NatsMessageCoder() {
    super(SCHEMA, TypeDescriptor.of(NatsMessage.class), new ToRow(), new FromRow());
  }

  /** The coder; it has no state, so every call may return the same instance. */
  public static NatsMessageCoder of() {
    return INSTANCE;
  }

  /*
   * Encode and decode go through byte arrays, not DataOutputStream and DataInputStream: those move
   * an int as four single-byte calls on the underlying stream (in Beam's CoderUtils and nested
   * coders, calls into a synchronized ByteArrayOutputStream or ByteArrayInputStream), and Flink
   * streaming clones every element through this coder between chained operators. The bytes are
   * the same as those streams wrote: big-endian ints and longs.
   */

  @Override
  public void encode(NatsMessage message, OutputStream outStream) throws IOException {
    outStream.write(toBytes(message));
  }

  /** The message's encoding in an array of exactly its size (also how a {@link NatsMessageBatch} is written). */
  static byte[] toBytes(NatsMessage message) throws IOException {
    byte[] subject = utf8(message.getSubject());
    byte[] payload = message.getPayload();
    byte[] stream = message.getStream() == null ? null : utf8(message.getStream());
    Instant timestamp = message.getTimestamp();
    long deliveredCount = message.getDeliveredCount();
    Map<String, List<String>> headers = message.getHeaders();
    // Every header key and value as UTF-8, in the order they are written.
    byte[][] headerStrings = headers.isEmpty() ? NO_STRINGS : new byte[headerStringCount(headers)][];

    long size = 1L + 4 + subject.length + 4 + payload.length + 8
        + (stream == null ? 0 : 4L + stream.length)
        + (timestamp == null ? 0 : 8)
        + (deliveredCount == 0 ? 0 : 8)
        + 4;
    int next = 0;
    for (Map.Entry<String, List<String>> header : headers.entrySet()) {
      byte[] key = utf8(header.getKey());
      headerStrings[next++] = key;
      size += 4L + key.length + 4;
      for (String value : header.getValue()) {
        byte[] bytes = utf8(value);
        headerStrings[next++] = bytes;
        size += 4L + bytes.length;
      }
    }
    if (size > Integer.MAX_VALUE - 8) {
      throw new IOException("NatsMessage of " + size + " encoded bytes: too large for one array");
    }

    ByteBuffer out = ByteBuffer.allocate((int) size);
    out.put((byte) ((stream != null ? HAS_STREAM : 0)
        | (timestamp != null ? HAS_TIMESTAMP : 0)
        | (deliveredCount != 0 ? HAS_DELIVERED_COUNT : 0)));
    putWithLength(out, subject);
    putWithLength(out, payload);
    out.putLong(message.getSequence());
    if (stream != null) {
      putWithLength(out, stream);
    }
    if (timestamp != null) {
      out.putLong(timestamp.getMillis());
    }
    if (deliveredCount != 0) {
      out.putLong(deliveredCount);
    }
    out.putInt(headers.size());
    next = 0;
    for (List<String> values : headers.values()) {
      putWithLength(out, headerStrings[next++]);
      out.putInt(values.size());
      for (int i = 0; i < values.size(); i++) {
        putWithLength(out, headerStrings[next++]);
      }
    }
    return out.array();
  }

  @Override
  public NatsMessage decode(InputStream in) throws IOException {
    return decode(new StreamInput(in));
  }

  /**
   * Decodes the message at the buffer's position and moves it past the message: how a {@link
   * NatsMessageBatch} reads its messages in place, without copying each field out first. The buffer
   * must be array-backed and big-endian, as {@link ByteBuffer#wrap} makes it.
   */
  static NatsMessage decode(ByteBuffer encoded) throws IOException {
    return decode(new BufferInput(encoded));
  }

  private static NatsMessage decode(Input in) throws IOException {
    // Reads exactly the bytes encode wrote and never past them (the coder is used nested, inside
    // other coders), in as few bulk reads as the lengths allow: each read takes a field and what
    // follows it up to the next length. A message without headers takes four reads, or five with
    // a stream.
    ByteBuffer chunk = in.next(1 + 4);
    int presence = chunk.get() & 0xFF;
    boolean hasStream = (presence & HAS_STREAM) != 0;
    // What follows the stream, or the sequence when there is none: timestamp, delivered count, header count.
    int tail = ((presence & HAS_TIMESTAMP) != 0 ? 8 : 0) + ((presence & HAS_DELIVERED_COUNT) != 0 ? 8 : 0) + 4;
    int subjectLength = length(chunk.getInt());

    chunk = in.next(subjectLength + 4);
    String subject = utf8(chunk, subjectLength);
    byte[] payload = in.bytes(length(chunk.getInt()));

    chunk = in.next(8 + (hasStream ? 4 : tail));
    long sequence = chunk.getLong();
    String stream = null;
    if (hasStream) {
      int streamLength = length(chunk.getInt());
      chunk = in.next(streamLength + tail);
      stream = utf8(chunk, streamLength);
    }
    Instant timestamp = (presence & HAS_TIMESTAMP) != 0 ? Instant.ofEpochMilli(chunk.getLong()) : null;
    long deliveredCount = (presence & HAS_DELIVERED_COUNT) != 0 ? chunk.getLong() : 0L;
    int headerCount = count(chunk.getInt());
    Map<String, List<String>> headers = headerCount == 0 ? Collections.emptyMap() : readHeaders(in, headerCount);
    return NatsMessage.of(subject, payload, headers, stream, sequence, timestamp, deliveredCount);
  }

  /**
   * The headers after their count: each key, its value count, and each value. As in {@link
   * #decode}, a read takes the int after its field, except where that int might not be there: after
   * the last header's value count (it may have no values) and after its last value.
   */
  private static Map<String, List<String>> readHeaders(Input in, int headerCount) throws IOException {
    Map<String, List<String>> headers = new TreeMap<>();
    int length = length(in.next(4).getInt());
    for (int i = 0; i < headerCount; i++) {
      boolean lastHeader = i == headerCount - 1;
      ByteBuffer chunk = in.next(length + 4 + (lastHeader ? 0 : 4));
      String key = utf8(chunk, length);
      int valueCount = count(chunk.getInt());
      if (!lastHeader) {
        length = length(chunk.getInt());
      } else if (valueCount > 0) {
        length = length(in.next(4).getInt());
      }
      List<String> values = new ArrayList<>(valueCount);
      for (int j = 0; j < valueCount; j++) {
        boolean more = !lastHeader || j < valueCount - 1;
        chunk = in.next(length + (more ? 4 : 0));
        values.add(utf8(chunk, length));
        if (more) {
          length = length(chunk.getInt());
        }
      }
      headers.put(key, values);
    }
    return headers;
  }

  /**
   * Where {@link #decode(Input)} takes its bytes: {@code next(n)} returns a buffer positioned at
   * the next {@code n} bytes, of which the caller consumes exactly {@code n} before asking again (a
   * buffer read in place holds more after them); {@code bytes(n)} the next {@code n} as an array.
   * Either fails with an {@link EOFException} when fewer are left.
   */
  private interface Input {
    ByteBuffer next(int length) throws IOException;

    byte[] bytes(int length) throws IOException;
  }

  /** A stream: each read is copied out of it into an array of its own. */
  private static final class StreamInput implements Input {
    private final InputStream in;

    StreamInput(InputStream in) {
      this.in = in;
    }

    @Override
    public ByteBuffer next(int length) throws IOException {
      if (length < 0) { // a field length near Integer.MAX_VALUE plus what is read after it
        throw new IOException("NatsMessage read of more than Integer.MAX_VALUE bytes: not a NatsMessageCoder encoding");
      }
      return ByteBuffer.wrap(bytes(length));
    }

    @Override
    public byte[] bytes(int length) throws IOException {
      byte[] bytes = new byte[length];
      readFully(bytes);
      return bytes;
    }

    private void readFully(byte[] bytes) throws IOException {
      int read = 0;
      while (read < bytes.length) {
        int n = in.read(bytes, read, bytes.length - read);
        if (n < 0) {
          throw new EOFException("NatsMessage ended after " + read + " of the " + bytes.length + " bytes of a read");
        }
        read += n;
      }
    }
  }

  /** An array-backed buffer holding the encoding: read in place, each read checked against what is left. */
  private static final class BufferInput implements Input {
    private final ByteBuffer buffer;

    BufferInput(ByteBuffer buffer) {
      this.buffer = buffer;
    }

    @Override
    public ByteBuffer next(int length) throws IOException {
      requireLeft(length);
      return buffer;
    }

    @Override
    public byte[] bytes(int length) throws IOException {
      requireLeft(length); // Before allocating: a corrupt length must not ask for gigabytes.
      byte[] bytes = new byte[length];
      buffer.get(bytes);
      return bytes;
    }

    private void requireLeft(int length) throws EOFException {
      if (length < 0 || length > buffer.remaining()) {
        throw new EOFException("NatsMessage read of " + length + " bytes with " + buffer.remaining() + " left: not a NatsMessageCoder encoding");
      }
    }
  }

  private static final byte[][] NO_STRINGS = new byte[0][];

  private static int headerStringCount(Map<String, List<String>> headers) {
    int count = 0;
    for (List<String> values : headers.values()) {
      count += 1 + values.size();
    }
    return count;
  }

  private static byte[] utf8(String value) {
    return value.getBytes(StandardCharsets.UTF_8);
  }

  /** Length-prefixed: unlike {@code writeUTF}, no 64 KiB limit on a header value. */
  private static void putWithLength(ByteBuffer out, byte[] bytes) {
    out.putInt(bytes.length);
    out.put(bytes);
  }

  /** The next {@code length} bytes of the chunk as UTF-8. */
  private static String utf8(ByteBuffer chunk, int length) {
    String value = new String(chunk.array(), chunk.arrayOffset() + chunk.position(), length, StandardCharsets.UTF_8);
    chunk.position(chunk.position() + length);
    return value;
  }

  private static int length(int length) throws IOException {
    if (length < 0) {
      throw new IOException("NatsMessage field of length " + length + ": not a NatsMessageCoder encoding");
    }
    return length;
  }

  private static int count(int count) throws IOException {
    if (count < 0) {
      throw new IOException("NatsMessage count of " + count + ": not a NatsMessageCoder encoding");
    }
    return count;
  }

  @Override
  public void verifyDeterministic() {
    // Deterministic by construction: fixed field order and headers in key order.
  }

  @Override
  public boolean consistentWithEquals() {
    return true;
  }

  @Override
  public String toString() {
    return "NatsMessageCoder";
  }

  @Override
  public boolean equals(@Nullable Object other) {
    return other instanceof NatsMessageCoder;
  }

  @Override
  public int hashCode() {
    return NatsMessageCoder.class.hashCode();
  }

  /** How {@link DefaultCoder} on {@link NatsMessage} finds this coder. */
  public static CoderProvider getCoderProvider() {
    return CoderProviders.forCoder(TypeDescriptor.of(NatsMessage.class), INSTANCE);
  }

  private static final class ToRow implements SerializableFunction<NatsMessage, Row> {
    @Override
    public Row apply(NatsMessage message) {
      return Row.withSchema(SCHEMA)
          .addValues(
              message.getSubject(),
              message.getPayload(),
              message.getHeaders(),
              message.getStream(),
              message.getSequence(),
              message.getTimestamp(),
              message.getDeliveredCount())
          .build();
    }

    @Override
    public boolean equals(@Nullable Object other) {
      return other instanceof ToRow;
    }

    @Override
    public int hashCode() {
      return ToRow.class.hashCode();
    }
  }

  private static final class FromRow implements SerializableFunction<Row, NatsMessage> {
    @Override
    public NatsMessage apply(Row row) {
      Map<String, List<String>> headers = row.getMap("headers");
      return NatsMessage.of(
          row.getString("subject"),
          row.getBytes("payload"),
          headers == null ? Collections.emptyMap() : headers,
          row.getString("stream"),
          row.getInt64("sequence"),
          row.getDateTime("timestamp") == null ? null : new Instant(row.getDateTime("timestamp")),
          row.getInt64("deliveredCount"));
    }

    @Override
    public boolean equals(@Nullable Object other) {
      return other instanceof FromRow;
    }

    @Override
    public int hashCode() {
      return FromRow.class.hashCode();
    }
  }
}
