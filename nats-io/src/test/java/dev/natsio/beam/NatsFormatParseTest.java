package dev.natsio.beam;

import static dev.natsio.beam.FormatTestData.ORDER;
import static dev.natsio.beam.FormatTestData.order;
import static dev.natsio.beam.FormatTestData.orders;
import static dev.natsio.beam.FormatTestData.payload;
import static dev.natsio.beam.FormatTestData.utf8;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.not;
import static org.hamcrest.Matchers.nullValue;
import static org.junit.Assert.assertThrows;

import java.io.ByteArrayOutputStream;
import java.nio.channels.Channels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowStreamWriter;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.util.SerializableUtils;
import org.apache.beam.sdk.values.Row;
import org.joda.time.Instant;
import org.junit.Test;

/** Formats, framing and event times without a server: what each payload parses to, or why it does not. */
public class NatsFormatParseTest {

  private static List<PayloadParser.Parsed> parse(NatsFormat format, byte[] payload) throws Exception {
    try (PayloadParser parser = new PayloadParser(format)) {
      return parser.parse(payload);
    }
  }

  /** The rows of a payload that must parse whole. */
  private static List<Row> rows(NatsFormat format, byte[] payload) throws Exception {
    List<Row> rows = new ArrayList<>();
    for (PayloadParser.Parsed record : parse(format, payload)) {
      if (record.rows == null) {
        throw new AssertionError("record " + record.line + " did not parse: " + record.problem(), record.error);
      }
      rows.addAll(record.rows);
    }
    return rows;
  }

  /** The problem of a payload that must be one bad record. */
  private static String problem(NatsFormat format, byte[] payload) throws Exception {
    List<PayloadParser.Parsed> records = parse(format, payload);
    assertThat(records.size(), equalTo(1));
    assertThat("rows of a bad record", records.get(0).rows, nullValue());
    return records.get(0).problem();
  }

  // ---- JSON ------------------------------------------------------------------------------------

  @Test
  public void jsonObjectParsesToOneRowOfTheSchema() throws Exception {
    byte[] json = utf8("{\"id\": 7, \"customer\": \"c\", \"amount\": 1.5, \"paid\": true, \"items\": 2,"
        + " \"ts\": \"2024-05-01T12:00:07Z\", \"ignored\": [1, 2]}");
    Row row = rows(NatsFormat.json(ORDER), json).get(0);
    assertThat(row, equalTo(Row.withSchema(ORDER)
        .addValues(7L, "c", 1.5, true, 2, null, Instant.parse("2024-05-01T12:00:07Z")).build()));
  }

  @Test
  public void jsonRowsSurviveFormattingAndParsing() throws Exception {
    NatsFormat json = NatsFormat.json(ORDER);
    for (Row order : orders(0, 20)) {
      assertThat(rows(json, payload(json, List.of(order))), equalTo(List.of(order)));
    }
  }

  @Test
  public void malformedJsonIsABadRecordNamingLineAndColumnWithoutQuotingThePayload() throws Exception {
    String problem = problem(NatsFormat.json(ORDER), utf8("{\"id\": 1, \"customer\": \"top-secret-name\",,}"));
    assertThat(problem, containsString("line 1, column"));
    assertThat(problem, not(containsString("top-secret-name")));
  }

  @Test
  public void jsonMissingARequiredFieldIsABadRecordNamingTheField() throws Exception {
    String problem = problem(NatsFormat.json(ORDER), utf8("{\"id\": 1}"));
    assertThat(problem, containsString("customer"));
  }

  @Test
  public void severalJsonObjectsInOnePayloadAreABadRecordUnlessNewlineDelimited() throws Exception {
    byte[] two = payload(NatsFormat.json(ORDER).withNewlineDelimited(), orders(0, 2));
    assertThat(problem(NatsFormat.json(ORDER), two), containsString("Trailing token"));
    assertThat(rows(NatsFormat.json(ORDER).withNewlineDelimited(), two), equalTo(orders(0, 2)));
  }

  @Test
  public void jsonNullIsABadRecord() throws Exception {
    assertThat(problem(NatsFormat.json(ORDER), utf8("null")), containsString("null"));
  }

  @Test
  public void emptyPayloadIsABadRecordForJsonAvroAndArrow() throws Exception {
    assertThat(problem(NatsFormat.json(ORDER), new byte[0]), equalTo("the payload is empty"));
    assertThat(problem(NatsFormat.avro(ORDER), new byte[0]), equalTo("the payload is empty"));
    assertThat(problem(NatsFormat.arrow(ORDER), new byte[0]), equalTo("the payload is empty"));
  }

  // ---- Avro ------------------------------------------------------------------------------------

  @Test
  public void avroRowsSurviveFormattingAndParsing() throws Exception {
    NatsFormat avro = NatsFormat.avro(ORDER);
    for (Row order : orders(0, 20)) {
      assertThat(rows(avro, payload(avro, List.of(order))), equalTo(List.of(order)));
    }
  }

  @Test
  public void avroFormatFromAnAvroSchemaReadsDatumsWrittenFromTheEquivalentBeamSchema() throws Exception {
    NatsFormat fromAvro = NatsAvroFormat.of(((AvroFormat) NatsFormat.avro(ORDER)).avroSchema());
    assertThat(fromAvro.getSchema().getFieldNames(), equalTo(ORDER.getFieldNames()));
    assertThat(rows(fromAvro, payload(NatsFormat.avro(ORDER), List.of(order(3)))).get(0).getInt64("id"), equalTo(3L));
  }

  @Test
  public void avroDatumWrittenWithAnotherSchemaIsABadRecord() throws Exception {
    String problem = problem(NatsFormat.avro(ORDER), FormatTestData.avroDatumOfAnotherSchema());
    assertThat(problem, containsString("it was not written with this schema"));
  }

  @Test
  public void avroDatumAnnouncingAStringLongerThanThePayloadIsABadRecordWithoutAllocatingIt() throws Exception {
    byte[] hugeString = {2, (byte) 0xfe, (byte) 0xff, (byte) 0xff, (byte) 0xff, 0x07}; // id 1, then a 1 GiB customer name
    assertThat(problem(NatsFormat.avro(ORDER), hugeString), containsString("announces a string of 1073741823 in a payload of 6 bytes"));
  }

  @Test
  public void avroDatumWithBytesLeftOverIsABadRecordSayingSo() throws Exception {
    byte[] good = payload(NatsFormat.avro(ORDER), List.of(order(1)));
    byte[] longer = Arrays.copyOf(good, good.length + 3);
    assertThat(problem(NatsFormat.avro(ORDER), longer), containsString("3 byte(s) left after the Avro record"));
  }

  // ---- Arrow -----------------------------------------------------------------------------------

  @Test
  public void arrowRowsSurviveFormattingAndParsingWithNullsAndEveryType() throws Exception {
    NatsFormat arrow = NatsFormat.arrow(ORDER);
    List<Row> orders = orders(0, 5_000); // more than one default vector allocation, with nulls throughout
    assertThat(rows(arrow, payload(arrow, orders)), equalTo(orders));
  }

  @Test
  public void arrowStreamWithSeveralBatchesGivesOneRowPerRecordOfEveryBatch() throws Exception {
    Schema schema = Schema.builder().addInt64Field("n").addNullableField("s", Schema.FieldType.STRING).build();
    org.apache.arrow.vector.types.pojo.Schema arrowSchema = new org.apache.arrow.vector.types.pojo.Schema(List.of(
        Field.nullable("n", new ArrowType.Int(64, true)), Field.nullable("s", ArrowType.Utf8.INSTANCE)));
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (RootAllocator allocator = new RootAllocator();
        VectorSchemaRoot root = VectorSchemaRoot.create(arrowSchema, allocator);
        ArrowStreamWriter writer = new ArrowStreamWriter(root, null, Channels.newChannel(out))) {
      writer.start();
      for (int batch = 0; batch < 3; batch++) {
        root.allocateNew();
        for (int i = 0; i < 4; i++) {
          ((BigIntVector) root.getVector("n")).setSafe(i, batch * 4 + i);
          ((VarCharVector) root.getVector("s")).setSafe(i, utf8("s" + (batch * 4 + i)));
        }
        root.setRowCount(4);
        writer.writeBatch();
      }
      writer.end();
    }
    List<Row> rows = rows(NatsFormat.arrow(schema), out.toByteArray());
    assertThat(rows.size(), equalTo(12));
    for (int i = 0; i < 12; i++) {
      assertThat(rows.get(i), equalTo(Row.withSchema(schema).addValues((long) i, "s" + i).build()));
    }
  }

  @Test
  public void arrowStreamCutInsideABatchIsABadRecord() throws Exception {
    byte[] stream = payload(NatsFormat.arrow(ORDER), orders(0, 100));
    String problem = problem(NatsFormat.arrow(ORDER), Arrays.copyOf(stream, stream.length / 2));
    assertThat(problem, containsString("end-of-stream marker"));
  }

  @Test
  public void arrowStreamCutAtABatchBoundaryIsABadRecordRatherThanFewerRows() throws Exception {
    byte[] stream = payload(NatsFormat.arrow(ORDER), orders(0, 100));
    byte[] withoutMarker = Arrays.copyOf(stream, stream.length - 8);
    assertThat(problem(NatsFormat.arrow(ORDER), withoutMarker), containsString("end-of-stream marker"));
  }

  @Test
  public void arrowStreamAnnouncingAMessageLargerThanThePayloadIsABadRecordWithoutAllocatingIt() throws Exception {
    byte[] garbage = utf8("this is not an arrow stream at all");
    byte[] withMarker = Arrays.copyOf(garbage, garbage.length + 8);
    System.arraycopy(new byte[] {-1, -1, -1, -1, 0, 0, 0, 0}, 0, withMarker, garbage.length, 8);
    // "this" read as a length announces a 1.9 GB message: refused before Arrow would allocate it.
    assertThat(problem(NatsFormat.arrow(ORDER), withMarker), containsString("announces a message of 1936287860 bytes"));
  }

  @Test
  public void arrowStreamOfAnotherSchemaIsABadRecordNamingBothSchemas() throws Exception {
    Schema other = Schema.builder().addInt64Field("id").addStringField("name").build();
    byte[] stream = payload(NatsFormat.arrow(other), List.of(Row.withSchema(other).addValues(1L, "x").build()));
    String problem = problem(NatsFormat.arrow(ORDER), stream);
    assertThat(problem, containsString("[id INT64, name STRING] is not the format's [id INT64, customer STRING"));
  }

  @Test
  public void arrowFormatRefusesFieldsArrowConversionCannotReadAsValues() {
    Schema nested = Schema.builder().addArrayField("tags", Schema.FieldType.STRING).build();
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NatsFormat.arrow(nested));
    assertThat(e.getMessage(), containsString("these fields are not: [tags ARRAY]"));
  }

  // ---- Strings and bytes -----------------------------------------------------------------------

  @Test
  public void invalidUtf8IsABadRecordNamingTheByteOffset() throws Exception {
    assertThat(problem(NatsFormat.string(), FormatTestData.invalidUtf8()),
        equalTo("not valid UTF-8: malformed byte sequence at byte 6"));
  }

  @Test
  public void emptyPayloadIsAnEmptyStringOrEmptyBytes() throws Exception {
    assertThat(rows(NatsFormat.string(), new byte[0]).get(0).getString("payload"), equalTo(""));
    assertThat(rows(NatsFormat.bytes("raw"), new byte[0]).get(0).getBytes("raw").length, equalTo(0));
  }

  @Test
  public void bytesFormatKeepsAnyPayloadUnchanged() throws Exception {
    byte[] payload = FormatTestData.invalidUtf8();
    assertThat(rows(NatsFormat.bytes(), payload).get(0).getBytes("payload"), equalTo(payload));
  }

  // ---- Newline framing -------------------------------------------------------------------------

  @Test
  public void newlineDelimitedPayloadGivesOneRowPerLineSkippingBlankLinesAndCarriageReturns() throws Exception {
    byte[] payload = utf8("first\r\n\nsecond\n\r\nthird");
    assertThat(rows(NatsFormat.string().withNewlineDelimited(), payload).stream().map(r -> r.getString(0))
        .collect(java.util.stream.Collectors.toList()), equalTo(List.of("first", "second", "third")));
  }

  @Test
  public void badLineIsABadRecordOfItsOwnWithItsLineNumberAndTheOtherLinesParse() throws Exception {
    byte[] good = payload(NatsFormat.json(ORDER).withNewlineDelimited(), orders(0, 1));
    byte[] payload = utf8(new String(good, java.nio.charset.StandardCharsets.UTF_8) + "{broken\n"
        + new String(payload(NatsFormat.json(ORDER).withNewlineDelimited(), orders(1, 2)), java.nio.charset.StandardCharsets.UTF_8));
    List<PayloadParser.Parsed> records = parse(NatsFormat.json(ORDER).withNewlineDelimited(), payload);
    assertThat(records.size(), equalTo(3));
    assertThat(records.get(0).rows, equalTo(orders(0, 1)));
    assertThat(records.get(1).line, equalTo(2));
    assertThat(records.get(1).rows, nullValue());
    assertThat(records.get(1).bytes, equalTo(utf8("{broken")));
    assertThat(records.get(2).rows, equalTo(orders(1, 2)));
  }

  @Test
  public void newlineDelimitedPayloadWithNoRecordIsABadRecord() throws Exception {
    assertThat(problem(NatsFormat.string().withNewlineDelimited(), new byte[0]), equalTo("the payload is empty"));
    assertThat(problem(NatsFormat.json(ORDER).withNewlineDelimited(), utf8("\n\r\n")),
        equalTo("the payload holds only blank lines"));
  }

  @Test
  public void stringWithALineBreakCannotBeWrittenNewlineDelimited() {
    NatsFormat lines = NatsFormat.string().withNewlineDelimited();
    Row row = Row.withSchema(lines.getSchema()).addValue("two\nlines").build();
    Exception e = assertThrows(IllegalArgumentException.class, () -> payload(lines, List.of(row)));
    assertThat(e.getMessage(), containsString("line break"));
  }

  @Test
  public void avroAndArrowCannotBeNewlineDelimited() {
    assertThrows(IllegalArgumentException.class, () -> NatsFormat.avro(ORDER).withNewlineDelimited());
    assertThrows(IllegalArgumentException.class, () -> NatsFormat.arrow(ORDER).withNewlineDelimited());
  }

  // ---- Event times -----------------------------------------------------------------------------

  @Test
  public void timestampFnGivesTheEarliestRecordTimeOfAMessage() throws Exception {
    NatsFormat lines = NatsFormat.json(ORDER).withNewlineDelimited();
    List<Row> rows = List.of(order(5), order(2), order(9));
    NatsMessage message = NatsMessage.of("s", payload(lines, rows), Map.of(), "st", 1, Instant.now());
    assertThat(lines.timestampFn("ts").apply(message), equalTo(order(2).getDateTime("ts").toInstant()));
  }

  @Test
  public void timestampFnFallsBackToPublishTimeForAMessageThatDoesNotParse() {
    Instant published = Instant.parse("2024-06-01T00:00:00Z");
    NatsMessage message = NatsMessage.of("s", utf8("{not json"), Map.of(), "st", 1, published);
    assertThat(NatsFormat.json(ORDER).timestampFn("ts").apply(message), equalTo(published));
  }

  @Test
  public void timestampFieldMayBeEpochMillisOrIsoText() {
    Schema schema = Schema.builder().addInt64Field("millis").addStringField("iso").build();
    NatsFormat json = NatsFormat.json(schema);
    NatsMessage message = NatsMessage.of("s", utf8("{\"millis\": 1000, \"iso\": \"2024-01-01T00:00:00.5Z\"}"), Map.of(), "st", 1,
        Instant.now());
    assertThat(json.timestampFn("millis").apply(message), equalTo(new Instant(1_000)));
    assertThat(json.timestampFn("iso").apply(message), equalTo(Instant.parse("2024-01-01T00:00:00.5Z")));
  }

  @Test
  public void timestampFieldMustExistAndHoldATime() {
    IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
        () -> NatsIO.parsePayloads(NatsFormat.json(ORDER)).withTimestampField("when"));
    assertThat(missing.getMessage(), containsString("'when' is not in the format's schema"));
    IllegalArgumentException wrongType = assertThrows(IllegalArgumentException.class,
        () -> NatsFormat.json(ORDER).timestampFn("paid"));
    assertThat(wrongType.getMessage(), containsString("must be DATETIME, INT64"));
  }

  // ---- Transforms and serialization ------------------------------------------------------------

  @Test
  public void formatsAndTimestampFunctionsSurviveJavaSerialization() {
    for (NatsFormat format : List.of(NatsFormat.json(ORDER).withNewlineDelimited(), NatsFormat.avro(ORDER),
        NatsFormat.arrow(ORDER), NatsFormat.string(), NatsFormat.bytes("raw"))) {
      assertThat(SerializableUtils.ensureSerializable(format), equalTo(format));
      SerializableFunction<NatsMessage, Instant> fn = NatsFormat.json(ORDER).timestampFn("ts");
      assertThat(SerializableUtils.ensureSerializable(fn), equalTo(fn));
    }
  }

  @Test
  public void metadataFieldMayNotShadowAPayloadField() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> NatsIO.parsePayloads(NatsFormat.json(ORDER)).withMetadata("customer"));
    assertThat(e.getMessage(), containsString("already has a field 'customer'"));
  }

  @Test
  public void batchSizeIsRefusedForFormatsHoldingOneRowPerMessage() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> NatsIO.formatRows(NatsFormat.json(ORDER), "out").withBatchSize(10));
    assertThat(e.getMessage(), containsString("only Arrow and newline-delimited formats"));
  }
}
