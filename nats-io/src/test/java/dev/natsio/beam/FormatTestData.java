package dev.natsio.beam;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.avro.SchemaBuilder;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.Schema.FieldType;
import org.apache.beam.sdk.values.Row;
import org.joda.time.Instant;

/** Rows, schemas and payloads (good and bad) shared by the format tests. */
final class FormatTestData {
  private FormatTestData() {}

  /** Orders: one field of most types, a nullable one, and an event time. */
  static final Schema ORDER =
      Schema.builder()
          .addInt64Field("id")
          .addStringField("customer")
          .addDoubleField("amount")
          .addBooleanField("paid")
          .addInt32Field("items")
          .addNullableField("note", FieldType.STRING)
          .addDateTimeField("ts")
          .build();

  static final Instant EPOCH = Instant.parse("2024-05-01T12:00:00Z");

  /** Order {@code i}: every tenth has no note; its time is {@code EPOCH + i seconds}. */
  static Row order(long i) {
    return Row.withSchema(ORDER)
        .addValues(i, "customer-" + (i % 7), i * 1.25, i % 2 == 0, (int) (i % 5), i % 10 == 0 ? null : "note " + i,
            EPOCH.plus(i * 1_000))
        .build();
  }

  static List<Row> orders(long from, long to) {
    List<Row> rows = new ArrayList<>();
    for (long i = from; i < to; i++) {
      rows.add(order(i));
    }
    return rows;
  }

  static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }

  /** One payload of {@code format} holding {@code rows}, as NatsIO.formatRows would write it. */
  static byte[] payload(NatsFormat format, List<Row> rows) throws Exception {
    try (PayloadParser parser = new PayloadParser(format)) {
      return parser.format(rows);
    }
  }

  /**
   * An Avro datum of another schema than {@link #ORDER}'s: a product with a long description. Read
   * as an order, its bytes run out or are left over.
   */
  static byte[] avroDatumOfAnotherSchema() throws Exception {
    org.apache.avro.Schema product = SchemaBuilder.record("Product").fields()
        .requiredString("sku")
        .requiredString("description")
        .endRecord();
    GenericRecord record = new GenericData.Record(product);
    record.put("sku", "SKU-1");
    record.put("description", "A description far longer than any order field would be, to leave bytes over");
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
    new GenericDatumWriter<GenericRecord>(product).write(record, encoder);
    encoder.flush();
    return out.toByteArray();
  }

  /** UTF-8 text with a lone continuation byte at byte 6. */
  static byte[] invalidUtf8() {
    return new byte[] {'h', 'e', 'l', 'l', 'o', ' ', (byte) 0x80, 'x'};
  }
}
