package dev.natsio.beam;

import static dev.natsio.beam.FormatTestData.ORDER;
import static dev.natsio.beam.FormatTestData.order;
import static dev.natsio.beam.FormatTestData.orders;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.Assert.assertThrows;

import java.util.ArrayList;
import java.util.List;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.WithTimestamps;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.transforms.windowing.FixedWindows;
import org.apache.beam.sdk.transforms.windowing.Window;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.Row;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Duration;
import org.junit.Rule;
import org.junit.Test;

/** parsePayloads and formatRows as transforms, on the Direct runner without a server: no broker is involved. */
public class NatsFormatTransformTest {
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  @Test
  public void rowsWhoseFieldsAreInAnotherOrderAreWrittenInTheFormatsOrder() {
    Schema reversed = Schema.builder().addStringField("b").addInt64Field("a").build();
    Schema format = Schema.builder().addInt64Field("a").addStringField("b").build();
    PCollection<String> payloads = pipeline
        .apply(Create.of(Row.withSchema(reversed).addValues("x", 1L).build()).withRowSchema(reversed))
        .apply(NatsIO.formatRows(NatsFormat.json(format), "out"))
        .apply(MapElements.into(TypeDescriptors.strings()).via(NatsMessage::getPayloadAsString));
    PAssert.that(payloads).containsInAnyOrder("{\"a\":1,\"b\":\"x\"}");
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void rowsOfDifferentWindowsNeverShareABatchedMessage() {
    NatsFormat lines = NatsFormat.json(ORDER).withNewlineDelimited();
    // Orders 0..39 are one second apart: two 20-second windows of 20 rows each.
    PCollection<Long> rowsPerMessage = pipeline
        .apply(Create.of(orders(0, 40)).withRowSchema(ORDER))
        .apply(WithTimestamps.of(r -> r.getDateTime("ts").toInstant()))
        .apply(Window.into(FixedWindows.of(Duration.standardSeconds(20))))
        .apply(NatsIO.formatRows(lines, "out").withBatchSize(1_000))
        .apply(MapElements.into(TypeDescriptors.longs()).via(m -> m.getPayloadAsString().lines().count()));
    PAssert.that(rowsPerMessage).satisfies(counts -> {
      long total = 0;
      for (long count : counts) {
        assertThat("rows in one message", count <= 20, equalTo(true));
        total += count;
      }
      assertThat(total, equalTo(40L));
      return null;
    });
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void formatRowsWithAMessageIdFieldSetsEachMessagesNatsMsgIdToTheFieldsValue() {
    Schema schema = Schema.builder().addInt64Field("id").addStringField("name").build();
    PCollection<String> ids = pipeline
        .apply(Create.of(Row.withSchema(schema).addValues(7L, "a").build(), Row.withSchema(schema).addValues(8L, "b").build())
            .withRowSchema(schema))
        .apply(NatsIO.formatRows(NatsFormat.json(schema), "out").withMessageIdField("id"))
        .apply(MapElements.into(TypeDescriptors.strings())
            .via(m -> m.getHeaders().get("Nats-Msg-Id") + " " + m.getPayloadAsString()));
    PAssert.that(ids).containsInAnyOrder("[7] {\"id\":7,\"name\":\"a\"}", "[8] {\"id\":8,\"name\":\"b\"}");
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void formatRowsRefusesAMessageIdFieldForAFormatThatBatchesRows() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> NatsIO.formatRows(NatsFormat.json(ORDER).withNewlineDelimited(), "out").withMessageIdField("id"));
    assertThat(e.getMessage(), containsString("payload holds several rows, and one message id cannot stand for them"));
  }

  @Test
  public void formatRowsRefusesRowsOfAnotherSchema() {
    Pipeline unrun = Pipeline.create();
    Schema other = Schema.builder().addInt64Field("id").build();
    PCollection<Row> rows = unrun.apply(Create.of(Row.withSchema(other).addValue(1L).build()).withRowSchema(other));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> rows.apply(NatsIO.formatRows(NatsFormat.json(ORDER), "out")));
    assertThat(e.getMessage(), containsString("the rows' schema [id] is not the format's [id, customer"));
  }

  @Test
  public void parsePayloadsOutputSchemaIsTheFormatsPlusTheMetadataRow() {
    Schema output = NatsIO.parsePayloads(NatsFormat.json(ORDER)).withMetadata("meta").getOutputSchema();
    List<String> expected = new ArrayList<>(ORDER.getFieldNames());
    expected.add("meta");
    assertThat(output.getFieldNames(), equalTo(expected));
    assertThat(output.getField("meta").getType().getRowSchema(), equalTo(ParsePayloads.METADATA_SCHEMA));
  }

  @Test
  public void displayDataNamesFormatFramingSchemaAndPolicy() {
    DisplayData parse = DisplayData.from(
        NatsIO.parsePayloads(NatsFormat.json(ORDER).withNewlineDelimited()).withTimestampField("ts").withDropBadRecords());
    assertThat(parse.toString(), containsString("format=json"));
    assertThat(parse.toString(), containsString("newlineDelimited=true"));
    assertThat(parse.toString(), containsString("timestampField=ts"));
    assertThat(parse.toString(), containsString("badRecords=DROP"));
    DisplayData format = DisplayData.from(NatsIO.formatRows(NatsFormat.arrow(ORDER), "metrics.out").withBatchSize(64));
    assertThat(format.toString(), containsString("subject=metrics.out"));
    assertThat(format.toString(), containsString("batchSize=64"));
  }

  @Test
  public void singleRowFormatsWriteOneMessagePerRow() {
    PCollection<Long> messages = pipeline
        .apply(Create.of(List.of(order(1), order(2), order(3))).withRowSchema(ORDER))
        .apply(NatsIO.formatRows(NatsFormat.avro(ORDER), "out"))
        .apply(org.apache.beam.sdk.transforms.Count.globally());
    PAssert.thatSingleton(messages).isEqualTo(3L);
    pipeline.run().waitUntilFinish();
  }
}
