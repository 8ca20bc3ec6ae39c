package dev.natsio.beam;

import java.io.ByteArrayOutputStream;
import java.util.List;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
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
          "NatsFormat.avro needs a RECORD schema, whose fields become the row's; got a " + avroSchema.getType() + ".");
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
        GenericRecord record = reader.read(null, decoder);
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
}
