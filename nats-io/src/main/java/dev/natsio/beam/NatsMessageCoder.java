package dev.natsio.beam;

import java.io.DataInputStream;
import java.io.DataOutputStream;
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
 * <p>A presence byte (bit 0: stream, bit 1: timestamp, bit 2: delivered count), the subject as
 * modified UTF-8, the payload length and bytes, the sequence, the stream, timestamp millis and
 * delivered count when present, then the header count and each header's key and values. A
 * delivered count of 0 (every message not read through a durable consumer) is absent, so such
 * messages encode exactly as before the field existed. Headers are held in key order, so equal messages encode
 * to equal bytes: the coder is deterministic and can be used in keys.
 *
 * <h3>Schema</h3>
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

  public static NatsMessageCoder of() {
    return INSTANCE;
  }

  @Override
  public void encode(NatsMessage message, OutputStream outStream) throws IOException {
    DataOutputStream out = new DataOutputStream(outStream);
    int presence =
        (message.getStream() != null ? HAS_STREAM : 0)
            | (message.getTimestamp() != null ? HAS_TIMESTAMP : 0)
            | (message.getDeliveredCount() != 0 ? HAS_DELIVERED_COUNT : 0);
    out.writeByte(presence);
    writeString(out, message.getSubject());
    byte[] payload = message.getPayload();
    out.writeInt(payload.length);
    out.write(payload);
    out.writeLong(message.getSequence());
    if (message.getStream() != null) {
      writeString(out, message.getStream());
    }
    if (message.getTimestamp() != null) {
      out.writeLong(message.getTimestamp().getMillis());
    }
    if (message.getDeliveredCount() != 0) {
      out.writeLong(message.getDeliveredCount());
    }
    Map<String, List<String>> headers = message.getHeaders();
    out.writeInt(headers.size());
    for (Map.Entry<String, List<String>> header : headers.entrySet()) {
      writeString(out, header.getKey());
      out.writeInt(header.getValue().size());
      for (String value : header.getValue()) {
        writeString(out, value);
      }
    }
    out.flush();
  }

  @Override
  public NatsMessage decode(InputStream inStream) throws IOException {
    DataInputStream in = new DataInputStream(inStream);
    int presence = in.readUnsignedByte();
    String subject = readString(in);
    byte[] payload = new byte[in.readInt()];
    in.readFully(payload);
    long sequence = in.readLong();
    String stream = (presence & HAS_STREAM) != 0 ? readString(in) : null;
    Instant timestamp = (presence & HAS_TIMESTAMP) != 0 ? Instant.ofEpochMilli(in.readLong()) : null;
    long deliveredCount = (presence & HAS_DELIVERED_COUNT) != 0 ? in.readLong() : 0L;
    int headerCount = in.readInt();
    Map<String, List<String>> headers = Collections.emptyMap();
    if (headerCount > 0) {
      headers = new TreeMap<>();
      for (int i = 0; i < headerCount; i++) {
        String key = readString(in);
        int valueCount = in.readInt();
        List<String> values = new ArrayList<>(valueCount);
        for (int j = 0; j < valueCount; j++) {
          values.add(readString(in));
        }
        headers.put(key, values);
      }
    }
    return NatsMessage.of(subject, payload, headers, stream, sequence, timestamp, deliveredCount);
  }

  /** Length-prefixed UTF-8: unlike {@code writeUTF}, no 64 KiB limit on a header value. */
  private static void writeString(DataOutputStream out, String value) throws IOException {
    byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
    out.writeInt(bytes.length);
    out.write(bytes);
  }

  private static String readString(DataInputStream in) throws IOException {
    byte[] bytes = new byte[in.readInt()];
    in.readFully(bytes);
    return new String(bytes, StandardCharsets.UTF_8);
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
