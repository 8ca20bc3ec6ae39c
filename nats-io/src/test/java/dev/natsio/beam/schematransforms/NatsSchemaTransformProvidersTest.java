package dev.natsio.beam.schematransforms;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsInAnyOrder;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasItems;

import dev.natsio.beam.testing.JetStreamTestData;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.Message;
import io.nats.client.api.OrderedConsumerConfiguration;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.transforms.SchemaTransformProvider;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionRowTuple;
import org.apache.beam.sdk.values.Row;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;

/** The read and write schema transforms: discovery, configuration schemas, and runs on Direct against a real server. */
public class NatsSchemaTransformProvidersTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  private final Connection connection = SERVER.sharedConnection();

  private static final String JSON_SCHEMA =
      "{\"type\": \"object\", \"properties\": {\"id\": {\"type\": \"integer\"}, \"name\": {\"type\": \"string\"}},"
          + " \"required\": [\"id\", \"name\"]}";

  private static Map<String, SchemaTransformProvider> providers() {
    Map<String, SchemaTransformProvider> byId = new HashMap<>();
    for (SchemaTransformProvider provider : ServiceLoader.load(SchemaTransformProvider.class)) {
      byId.put(provider.identifier(), provider);
    }
    return byId;
  }

  @Test
  public void bothProvidersAreFoundThroughServiceLoader() {
    assertThat(providers().keySet(), hasItems(
        "beam:schematransform:dev.natsio:nats_read:v1", "beam:schematransform:dev.natsio:nats_write:v1"));
  }

  @Test
  public void theReadConfigurationSchemaHasTheDocumentedSnakeCaseFields() {
    Schema schema = providers().get(NatsReadSchemaTransformProvider.IDENTIFIER).configurationSchema();
    assertThat(schema.getFieldNames(), containsInAnyOrder("servers", "stream", "filter_subjects", "subject", "queue_group",
        "consumer", "start_sequence", "start_time", "stop_sequence", "stop_at_end_of_stream", "format", "schema",
        "error_handling"));
  }

  @Test
  public void theWriteConfigurationSchemaHasTheDocumentedSnakeCaseFields() {
    Schema schema = providers().get(NatsWriteSchemaTransformProvider.IDENTIFIER).configurationSchema();
    assertThat(schema.getFieldNames(),
        containsInAnyOrder("servers", "subject", "jet_stream", "message_id_field", "format", "error_handling"));
  }

  @Test
  public void theReadGivesRowsOfJsonAndBadPayloadsOnErrors() throws Exception {
    createStream(connection, "ST_READ", "stread.>");
    String[] payloads = {"{\"id\": 1, \"name\": \"a\"}", "{broken", "{\"id\": 2, \"name\": \"b\"}", "{\"id\": 3}"};
    JetStreamTestData.publish(connection, i -> "stread.x", payloads.length,
        i -> payloads[i].getBytes(StandardCharsets.UTF_8), i -> null);
    SchemaTransformProvider read = providers().get(NatsReadSchemaTransformProvider.IDENTIFIER);
    Row configuration = Row.withSchema(read.configurationSchema())
        .withFieldValue("servers", SERVER.url())
        .withFieldValue("stream", "ST_READ")
        .withFieldValue("stop_at_end_of_stream", true)
        .withFieldValue("format", "json")
        .withFieldValue("schema", JSON_SCHEMA)
        .withFieldValue("error_handling", Row.withSchema(read.configurationSchema().getField("error_handling").getType()
            .getRowSchema()).withFieldValue("output", "errors").build())
        .build();

    PCollectionRowTuple outputs = PCollectionRowTuple.empty(pipeline).apply(read.from(configuration));

    PCollection<String> rows = outputs.get("output")
        .apply("rows", MapElements.into(TypeDescriptors.strings()).via(r -> r.getInt64("id") + ":" + r.getString("name")));
    PCollection<String> errors = outputs.get("errors")
        .apply("errors", MapElements.into(TypeDescriptors.strings())
            .via(r -> new String(r.getBytes("failed_row"), StandardCharsets.UTF_8) + " | " + r.getString("error_message")));
    PAssert.that(rows).containsInAnyOrder("1:a", "2:b");
    PAssert.that(errors).satisfies(found -> {
      List<String> list = new ArrayList<>();
      found.forEach(list::add);
      assertThat(list.size(), equalTo(2));
      assertThat(String.join("\n", list), containsString("{broken | Could not parse the payload of the message at stream 'ST_READ' sequence 2"));
      assertThat(String.join("\n", list), containsString("{\"id\": 3} | Could not parse the payload of the message at stream 'ST_READ' sequence 4"));
      return null;
    });
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void theWritePublishesRowsToAStreamWithMessageIds() throws Exception {
    createStream(connection, "ST_WRITE", "stwrite.>");
    Schema schema = Schema.builder().addInt64Field("id").addStringField("name").build();
    SchemaTransformProvider write = providers().get(NatsWriteSchemaTransformProvider.IDENTIFIER);
    Row configuration = Row.withSchema(write.configurationSchema())
        .withFieldValue("servers", SERVER.url())
        .withFieldValue("subject", "stwrite.rows")
        .withFieldValue("jet_stream", true)
        .withFieldValue("message_id_field", "id")
        .withFieldValue("format", "json")
        .build();
    PCollection<Row> rows = pipeline.apply(Create.of(
        Row.withSchema(schema).addValues(1L, "a").build(), Row.withSchema(schema).addValues(2L, "b").build()).withRowSchema(schema));

    PCollectionRowTuple.of("input", rows).apply(write.from(configuration));
    pipeline.run().waitUntilFinish();

    var consumer = connection.jetStream().getStreamContext("ST_WRITE").createOrderedConsumer(new OrderedConsumerConfiguration());
    List<String> stored = new ArrayList<>();
    for (int i = 0; i < 2; i++) {
      Message m = consumer.next(Duration.ofSeconds(5));
      stored.add(m.getHeaders().getFirst("Nats-Msg-Id") + " " + new String(m.getData(), StandardCharsets.UTF_8));
    }
    assertThat(stored, containsInAnyOrder("1 {\"id\":1,\"name\":\"a\"}", "2 {\"id\":2,\"name\":\"b\"}"));
    assertThat(connection.jetStreamManagement().getStreamInfo("ST_WRITE").getStreamState().getMsgCount(), equalTo(2L));
  }
}
