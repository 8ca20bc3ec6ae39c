package dev.natsio.beam;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
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
 * <h3>Encoding</h3>
 *
 * <p>A presence byte (bit 0: stream, bit 1: timestamp), the subject, the payload, the sequence,
 * the stream and timestamp millis when present, then the header count and each header's key and
 * values. Ints and longs are big-endian; strings are UTF-8 and, like the payload, prefixed with
 * their length as an int. Headers are held in key order, so equal messages encode
 * to equal bytes: the coder is deterministic and can be used in keys.
 *
 * <h3>Schema</h3>
 *
 * <p>Extending {@link SchemaCoder} makes {@code PCollection.hasSchema()} true without a schema
 * provider, whose generic row coder would be several times slower than this one: the row form
 * ({@link #SCHEMA}) is used only by schema transforms that ask for it.
 */
public final class NatsMessageCoder extends SchemaCoder<NatsMessage> {
  /** The row form of a message: subject, payload, headers, stream, sequence, timestamp. */
  public static final Schema SCHEMA =
      Schema.builder()
          .addStringField("subject")
          .addByteArrayField("payload")
          .addMapField("headers", FieldType.STRING, FieldType.array(FieldType.STRING))
          .addNullableField("stream", FieldType.STRING)
          .addInt64Field("sequence")
          .addNullableField("timestamp", FieldType.DATETIME)
          .build();

  private static final NatsMessageCoder INSTANCE = new NatsMessageCoder();
  private static final int HAS_STREAM = 1;
  private static final int HAS_TIMESTAMP = 2;

  private NatsMessageCoder() {
    super(SCHEMA, TypeDescriptor.of(NatsMessage.class), new ToRow(), new FromRow());
  }

  public static NatsMessageCoder of() {
    return INSTANCE;
  }

  /*
   * Encoding and decoding go through one byte array per message rather than DataOutputStream and
   * DataInputStream: those write and read an int as four single-byte calls on the underlying
   * stream (a synchronized ByteArrayOutputStream.write in Beam's CoderUtils), and Flink streaming
   * clones every element through this coder between chained operators. Same bytes as before.
   */

  @Override
  public void encode(NatsMessage message, OutputStream outStream) throws IOException {
    byte[] subject = utf8(message.getSubject());
    byte[] payload = message.getPayload();
    String streamName = message.getStream();
    byte[] stream = streamName == null ? null : utf8(streamName);
    Instant timestamp = message.getTimestamp();
    Map<String, List<String>> headers = message.getHeaders();

    int size = 1 + 4 + subject.length + 4 + payload.length + 8
        + (stream == null ? 0 : 4 + stream.length) + (timestamp == null ? 0 : 8) + 4;
    List<byte[]> headerBytes = headers.isEmpty() ? List.of() : new ArrayList<>();
    for (Map.Entry<String, List<String>> header : headers.entrySet()) {
      byte[] key = utf8(header.getKey());
      headerBytes.add(key);
      size += 4 + key.length + 4;
      for (String value : header.getValue()) {
        byte[] bytes = utf8(value);
        headerBytes.add(bytes);
        size += 4 + bytes.length;
      }
    }

    Writer out = new Writer(size);
    out.writeByte((stream != null ? HAS_STREAM : 0) | (timestamp != null ? HAS_TIMESTAMP : 0));
    out.writeBytes(subject);
    out.writeBytes(payload);
    out.writeLong(message.getSequence());
    if (stream != null) {
      out.writeBytes(stream);
    }
    if (timestamp != null) {
      out.writeLong(timestamp.getMillis());
    }
    out.writeInt(headers.size());
    int next = 0;
    for (Map.Entry<String, List<String>> header : headers.entrySet()) {
      out.writeBytes(headerBytes.get(next++));
      out.writeInt(header.getValue().size());
      for (int i = 0; i < header.getValue().size(); i++) {
        out.writeBytes(headerBytes.get(next++));
      }
    }
    outStream.write(out.buffer);
  }

  @Override
  public NatsMessage decode(InputStream in) throws IOException {
    // Reads exactly what encode wrote and never past it (the coder may be nested), in as few bulk
    // reads as the lengths allow: each read also takes the length of the field after it. A
    // message without headers takes five reads.
    byte[] chunk = readBytes(in, 5);
    int presence = chunk[0] & 0xFF;
    boolean hasStream = (presence & HAS_STREAM) != 0;
    boolean hasTimestamp = (presence & HAS_TIMESTAMP) != 0;
    int subjectLength = checkedLength(getInt(chunk, 1));
    chunk = readBytes(in, subjectLength + 4);
    String subject = new String(chunk, 0, subjectLength, StandardCharsets.UTF_8);
    byte[] payload = readBytes(in, checkedLength(getInt(chunk, subjectLength)));
    chunk = readBytes(in, hasStream ? 12 : 8);
    long sequence = getLong(chunk, 0);
    int rest = (hasTimestamp ? 8 : 0) + 4;
    String stream = null;
    int offset = 0;
    if (hasStream) {
      int streamLength = checkedLength(getInt(chunk, 8));
      chunk = readBytes(in, streamLength + rest);
      stream = new String(chunk, 0, streamLength, StandardCharsets.UTF_8);
      offset = streamLength;
    } else {
      chunk = readBytes(in, rest);
    }
    Instant timestamp = null;
    if (hasTimestamp) {
      timestamp = Instant.ofEpochMilli(getLong(chunk, offset));
      offset += 8;
    }
    int headerCount = getInt(chunk, offset);
    Map<String, List<String>> headers = Collections.emptyMap();
    if (headerCount > 0) {
      headers = new TreeMap<>();
      for (int i = 0; i < headerCount; i++) {
        String key = readString(in);
        int valueCount = getInt(readBytes(in, 4), 0);
        List<String> values = new ArrayList<>(valueCount);
        for (int j = 0; j < valueCount; j++) {
          values.add(readString(in));
        }
        headers.put(key, values);
      }
    }
    return NatsMessage.of(subject, payload, headers, stream, sequence, timestamp);
  }

  private static byte[] utf8(String value) {
    return value.getBytes(StandardCharsets.UTF_8);
  }

  /** Big-endian, as DataOutputStream writes: lengths are ints, strings and byte arrays length-prefixed. */
  private static final class Writer {
    final byte[] buffer;
    int position;

    Writer(int size) {
      this.buffer = new byte[size];
    }

    void writeByte(int value) {
      buffer[position++] = (byte) value;
    }

    void writeInt(int value) {
      buffer[position++] = (byte) (value >>> 24);
      buffer[position++] = (byte) (value >>> 16);
      buffer[position++] = (byte) (value >>> 8);
      buffer[position++] = (byte) value;
    }

    void writeLong(long value) {
      writeInt((int) (value >>> 32));
      writeInt((int) value);
    }

    /** Length-prefixed: unlike {@code writeUTF}, no 64 KiB limit on a header value. */
    void writeBytes(byte[] bytes) {
      writeInt(bytes.length);
      System.arraycopy(bytes, 0, buffer, position, bytes.length);
      position += bytes.length;
    }
  }

  private static byte[] readBytes(InputStream in, int length) throws IOException {
    byte[] bytes = new byte[length];
    int read = 0;
    while (read < length) {
      int n = in.read(bytes, read, length - read);
      if (n < 0) {
        throw new EOFException("NatsMessage ended after " + read + " of " + length + " bytes of a field");
      }
      read += n;
    }
    return bytes;
  }

  private static String readString(InputStream in) throws IOException {
    return new String(readBytes(in, checkedLength(getInt(readBytes(in, 4), 0))), StandardCharsets.UTF_8);
  }

  /** A field length, with room for the 12 bytes a chunk may read after it. */
  private static int checkedLength(int length) throws IOException {
    if (length < 0 || length > Integer.MAX_VALUE - 12) {
      throw new IOException("NatsMessage field of length " + length + ": not a NatsMessageCoder encoding");
    }
    return length;
  }

  private static int getInt(byte[] bytes, int offset) {
    return ((bytes[offset] & 0xFF) << 24) | ((bytes[offset + 1] & 0xFF) << 16) | ((bytes[offset + 2] & 0xFF) << 8) | (bytes[offset + 3] & 0xFF);
  }

  private static long getLong(byte[] bytes, int offset) {
    return ((long) getInt(bytes, offset) << 32) | (getInt(bytes, offset + 4) & 0xFFFFFFFFL);
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
              message.getTimestamp())
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
          row.getDateTime("timestamp") == null ? null : new Instant(row.getDateTime("timestamp")));
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
