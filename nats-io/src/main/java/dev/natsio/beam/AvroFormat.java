package dev.natsio.beam;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.Decoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.util.Utf8;
import org.apache.beam.sdk.extensions.avro.schemas.utils.AvroUtils;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.values.Row;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * {@link NatsFormat#avro}: one Avro binary datum per payload, converted with Beam's {@link
 * AvroUtils}. Kept out of {@link NatsFormat} so that Avro classes load only when this format is
 * used: the Avro extension is an optional dependency.
 *
 * <p>The datum is decoded with Avro's own reader, not {@code AvroUtils.getAvroBytesToRowFunction},
 * for two reasons: that function quotes the whole payload in its error message (payloads may hold
 * personal data), and it ignores bytes left after the datum, which is the surest sign that a
 * payload was written with another schema.
 *
 * <p>Avro's binary decoder allocates a string, byte array or collection of whatever length the
 * bytes announce before reading it: a payload of another schema can announce gigabytes and take
 * the worker down. {@link BoundedDecoder} refuses any length larger than the payload itself.
 */
final class AvroFormat extends NatsFormat {
  private static final long serialVersionUID = 1L;

  /** Avro's Schema is serializable only in newer releases; its JSON form always is. */
  private final String avroSchemaJson;
  private final Schema beamSchema;
  private transient org.apache.avro.@Nullable Schema avroSchema;

  private AvroFormat(String avroSchemaJson, Schema beamSchema) {
    super(false);
    this.avroSchemaJson = avroSchemaJson;
    this.beamSchema = beamSchema;
  }

  static NatsFormat of(Schema beamSchema) {
    return new AvroFormat(AvroUtils.toAvroSchema(beamSchema).toString(), beamSchema);
  }

  static NatsFormat of(org.apache.avro.Schema avroSchema) {
    if (avroSchema.getType() != org.apache.avro.Schema.Type.RECORD) {
      throw new IllegalArgumentException(
          "NatsAvroFormat.of needs a RECORD schema, whose fields become the row's; got a " + avroSchema.getType() + ".");
    }
    return new AvroFormat(avroSchema.toString(), AvroUtils.toBeamSchema(avroSchema));
  }

  @Override
  public Schema getSchema() {
    return beamSchema;
  }

  /** The Avro record schema of the payloads. */
  org.apache.avro.Schema avroSchema() {
    if (avroSchema == null) {
      avroSchema = new org.apache.avro.Schema.Parser().parse(avroSchemaJson);
    }
    return avroSchema;
  }

  @Override
  String name() {
    return "avro";
  }

  @Override
  boolean canBeNewlineDelimited() {
    return false;
  }

  @Override
  NatsFormat copy(boolean newlineDelimited) {
    return this;
  }

  @Override
  Codec newCodec() {
    org.apache.avro.Schema schema = avroSchema();
    GenericDatumReader<GenericRecord> reader = new GenericDatumReader<>(schema);
    GenericDatumWriter<GenericRecord> writer = new GenericDatumWriter<>(schema);
    return new Codec() {
      private @Nullable BinaryDecoder decoder;
      private @Nullable BinaryEncoder encoder;

      @Override
      public List<Row> decode(byte[] bytes, int offset, int length) throws Exception {
        decoder = DecoderFactory.get().binaryDecoder(bytes, offset, length, decoder);
        GenericRecord record = reader.read(null, new BoundedDecoder(decoder, length));
        if (!decoder.isEnd()) {
          int left = 0;
          while (!decoder.isEnd()) {
            decoder.skipFixed(1);
            left++;
          }
          throw new IllegalArgumentException(
              left + " byte(s) left after the Avro record: the payload was not written with this schema");
        }
        return List.of(AvroUtils.toBeamRowStrict(record, beamSchema));
      }

      @Override
      public byte[] encode(List<Row> rows) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        encoder = EncoderFactory.get().binaryEncoder(out, encoder);
        writer.write(AvroUtils.toGenericRecord(single(rows), schema), encoder);
        encoder.flush();
        return out.toByteArray();
      }
    };
  }

  /**
   * A binary decoder that refuses lengths and counts larger than the datum: no value of a datum of
   * {@code limit} bytes can be longer, so such a length means the bytes are not of this schema.
   */
  private static final class BoundedDecoder extends Decoder {
    private final BinaryDecoder in;
    private final long limit;

    BoundedDecoder(BinaryDecoder in, long limit) {
      this.in = in;
      this.limit = limit;
    }

    private long check(long length, String what) throws IOException {
      if (length < 0 || length > limit) {
        throw new IOException(
            "the datum announces " + what + " of " + length + " in a payload of " + limit + " bytes: it was not written with this schema");
      }
      return length;
    }

    @Override
    public void readNull() throws IOException {
      in.readNull();
    }

    @Override
    public boolean readBoolean() throws IOException {
      return in.readBoolean();
    }

    @Override
    public int readInt() throws IOException {
      return in.readInt();
    }

    @Override
    public long readLong() throws IOException {
      return in.readLong();
    }

    @Override
    public float readFloat() throws IOException {
      return in.readFloat();
    }

    @Override
    public double readDouble() throws IOException {
      return in.readDouble();
    }

    @Override
    public Utf8 readString(Utf8 old) throws IOException {
      int length = (int) check(in.readLong(), "a string");
      Utf8 result = old != null ? old : new Utf8();
      result.setByteLength(length);
      in.readFixed(result.getBytes(), 0, length);
      return result;
    }

    @Override
    public String readString() throws IOException {
      return readString(null).toString();
    }

    @Override
    public void skipString() throws IOException {
      in.skipFixed((int) check(in.readLong(), "a string"));
    }

    @Override
    public ByteBuffer readBytes(ByteBuffer old) throws IOException {
      int length = (int) check(in.readLong(), "bytes");
      byte[] bytes = new byte[length];
      in.readFixed(bytes, 0, length);
      return ByteBuffer.wrap(bytes);
    }

    @Override
    public void skipBytes() throws IOException {
      in.skipFixed((int) check(in.readLong(), "bytes"));
    }

    @Override
    public void readFixed(byte[] bytes, int start, int length) throws IOException {
      in.readFixed(bytes, start, length);
    }

    @Override
    public void skipFixed(int length) throws IOException {
      in.skipFixed(length);
    }

    @Override
    public int readEnum() throws IOException {
      return in.readEnum();
    }

    @Override
    public long readArrayStart() throws IOException {
      return check(in.readArrayStart(), "an array");
    }

    @Override
    public long arrayNext() throws IOException {
      return check(in.arrayNext(), "an array block");
    }

    @Override
    public long skipArray() throws IOException {
      return in.skipArray();
    }

    @Override
    public long readMapStart() throws IOException {
      return check(in.readMapStart(), "a map");
    }

    @Override
    public long mapNext() throws IOException {
      return check(in.mapNext(), "a map block");
    }

    @Override
    public long skipMap() throws IOException {
      return in.skipMap();
    }

    @Override
    public int readIndex() throws IOException {
      return in.readIndex();
    }
  }
}
