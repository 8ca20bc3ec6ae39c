package dev.natsio.beam.sql;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.JetStreamTestData;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.Message;
import io.nats.client.api.StreamInfo;
import io.nats.client.impl.Headers;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.extensions.sql.SqlTransform;
import org.apache.beam.sdk.extensions.sql.impl.BeamSqlEnv;
import org.apache.beam.sdk.extensions.sql.impl.rel.BeamSqlRelUtils;
import org.apache.beam.sdk.extensions.sql.TableUtils;
import org.apache.beam.sdk.extensions.sql.meta.BeamSqlTable;
import org.apache.beam.sdk.extensions.sql.meta.Table;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollection.IsBounded;
import org.apache.beam.sdk.values.Row;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;

/** {@code TYPE nats} tables in Beam SQL on the Direct runner, against a real nats-server. */
public class NatsTableProviderTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  private final Connection connection = SERVER.sharedConnection();

  static String ordersTable(String name, String url, String properties) {
    return "CREATE EXTERNAL TABLE " + name + " (id BIGINT, region VARCHAR, amount DOUBLE) TYPE nats LOCATION '" + url
        + "' TBLPROPERTIES '" + properties + "'";
  }

  @Test
  public void aggregationOverAJsonStreamDropsMalformedMessagesAndGivesExactTotals() throws Exception {
    createStream(connection, "SQL_AGG", "sqlagg.>");
    SqlTestData.publishOrdersWithMalformed(connection, "sqlagg.orders", 300);

    PCollection<String> totals = pipeline
        .apply(SqlTransform.query("SELECT region, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY region")
            .withDdlString(ordersTable("orders", SERVER.url(),
                "{\"stream\": \"SQL_AGG\", \"format\": \"json\", \"stopAtEndOfStream\": true, \"badRecords\": \"drop\"}")))
        .apply(MapElements.into(TypeDescriptors.strings())
            .via(r -> r.getString("region") + "=" + r.getInt64("n") + "," + r.getDouble("total")));

    PAssert.that(totals).containsInAnyOrder(
        SqlTestData.totals(300).entrySet().stream().map(e -> e.getKey() + "=" + e.getValue()).toArray(String[]::new));
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void insertIntoSelectCopiesAStreamWithMessageIdsAndARerunAddsNoDuplicates() throws Exception {
    createStream(connection, "SQL_SRC", "sqlsrc.>");
    createStream(connection, "SQL_DST", "sqldst.>");
    JetStreamTestData.publish(connection, i -> "sqlsrc.orders", 200,
        i -> SqlTestData.order(i).getBytes(StandardCharsets.UTF_8), i -> null);
    String ddlSource = ordersTable("src", SERVER.url(), "{\"stream\": \"SQL_SRC\", \"stopAtEndOfStream\": true}");
    String ddlTarget = ordersTable("dst", SERVER.url(),
        "{\"stream\": \"SQL_DST\", \"subject\": \"sqldst.orders\", \"jetStream\": true, \"messageIdColumn\": \"id\"}");

    for (int run = 0; run < 2; run++) {
      Pipeline copy = Pipeline.create();
      BeamSqlEnv env = BeamSqlEnv.inMemory(new NatsTableProvider());
      env.executeDdl(ddlSource);
      env.executeDdl(ddlTarget);
      BeamSqlRelUtils.toPCollection(copy, env.parseQuery("INSERT INTO dst SELECT id, region, amount FROM src"));
      copy.run().waitUntilFinish();
    }

    StreamInfo target = connection.jetStreamManagement().getStreamInfo("SQL_DST");
    assertThat("messages stored after two runs", target.getStreamState().getMsgCount(), equalTo(200L));
    Set<String> ids = new HashSet<>();
    var consumer = connection.jetStream().getStreamContext("SQL_DST").createOrderedConsumer(
        new io.nats.client.api.OrderedConsumerConfiguration());
    for (int i = 0; i < 200; i++) {
      Message m = consumer.next(Duration.ofSeconds(5));
      Headers headers = m.getHeaders();
      ids.add(headers.getFirst("Nats-Msg-Id"));
      String json = new String(m.getData(), StandardCharsets.UTF_8);
      assertThat(json, containsString("\"id\":" + headers.getFirst("Nats-Msg-Id") + ","));
    }
    assertThat("distinct message ids", ids.size(), equalTo(200));
  }

  @Test
  public void metadataColumnsHoldTheMessagesSubjectStreamSequenceAndHeaders() throws Exception {
    createStream(connection, "SQL_META", "sqlmeta.>");
    JetStreamTestData.publish(connection, i -> "sqlmeta.o" + i, 3,
        i -> SqlTestData.order(i).getBytes(StandardCharsets.UTF_8), i -> new Headers().put("origin", "test" + i));

    PCollection<String> rows = pipeline
        .apply(SqlTransform.query(
                "SELECT id, nats_subject, nats_stream, nats_sequence, nats_headers['origin'][1] AS origin,"
                    + " nats_timestamp IS NOT NULL AS stamped FROM meta")
            .withDdlString("CREATE EXTERNAL TABLE meta (id BIGINT, nats_subject VARCHAR, nats_stream VARCHAR,"
                + " nats_sequence BIGINT, nats_timestamp TIMESTAMP, nats_headers MAP<VARCHAR, ARRAY<VARCHAR>>)"
                + " TYPE nats LOCATION '" + SERVER.url() + "' TBLPROPERTIES '{\"stream\": \"SQL_META\", \"stopSequence\": 4}'"))
        .apply(MapElements.into(TypeDescriptors.strings()).via(NatsTableProviderTest::describe));

    PAssert.that(rows).containsInAnyOrder(
        "0 sqlmeta.o0 SQL_META 1 test0 true", "1 sqlmeta.o1 SQL_META 2 test1 true", "2 sqlmeta.o2 SQL_META 3 test2 true");
    pipeline.run().waitUntilFinish();
  }

  private static String describe(Row r) {
    return r.getInt64("id") + " " + r.getString("nats_subject") + " " + r.getString("nats_stream") + " "
        + r.getInt64("nats_sequence") + " " + r.getString("origin") + " " + r.getBoolean("stamped");
  }

  @Test
  public void aTableWithAStopIsBoundedAndOneWithoutIsUnbounded() {
    assertThat(table("{\"stream\": \"S\", \"stopAtEndOfStream\": true}").isBounded(), equalTo(IsBounded.BOUNDED));
    assertThat(table("{\"stream\": \"S\", \"stopSequence\": 10}").isBounded(), equalTo(IsBounded.BOUNDED));
    assertThat(table("{\"stream\": \"S\", \"startSequence\": 10}").isBounded(), equalTo(IsBounded.UNBOUNDED));
  }

  @Test
  public void anUnknownPropertyIsRefusedWithTheValidKeys() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> table("{\"stream\": \"S\", \"topic\": \"x\"}"));
    assertThat(e.getMessage(), containsString("unknown TBLPROPERTIES key 'topic'. Valid keys: stream (a string), filterSubjects"
        + " (an array of strings), startSequence (an integer)"));
    assertThat(e.getMessage(), containsString("messageIdColumn (a string)"));
  }

  @Test
  public void aPropertyOfTheWrongTypeIsRefusedWithTheValidKeys() {
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> table("{\"stream\": \"S\", \"stopAtEndOfStream\": \"yes\"}"));
    assertThat(e.getMessage(), containsString("TBLPROPERTIES 'stopAtEndOfStream' must be true or false, not \"yes\". Valid keys:"));
  }

  @Test
  public void aMetadataColumnOfTheWrongTypeIsRefused() {
    Schema columns = Schema.builder().addInt64Field("id").addStringField("nats_sequence").build();
    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> table(columns, "{\"stream\": \"S\"}"));
    assertThat(e.getMessage(), containsString("metadata column nats_sequence must have type BIGINT"));
  }

  private static BeamSqlTable table(String properties) {
    return table(Schema.builder().addInt64Field("id").build(), properties);
  }

  private static BeamSqlTable table(Schema columns, String properties) {
    return new NatsTableProvider().buildBeamSqlTable(Table.builder().type("nats").name("t").schema(columns)
        .location("nats://127.0.0.1:1").properties(TableUtils.parseProperties(properties)).build());
  }
}
