package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import dev.natsio.beam.sql.SqlTestData;
import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.NatsTestServer;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.extensions.sql.SqlTransform;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.Row;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.ClassRule;
import org.junit.Test;

/** Beam SQL over {@code TYPE nats} tables on Flink: a batch aggregation and windowed aggregation over a live read. */
public class FlinkSqlTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  private static String ordersTable(String stream, String extraColumns, String extraProperties) {
    return "CREATE EXTERNAL TABLE orders (id BIGINT, region VARCHAR, amount DOUBLE" + extraColumns + ") TYPE nats LOCATION '"
        + SERVER.url() + "' TBLPROPERTIES '{\"stream\": \"" + stream + "\", \"format\": \"json\", \"badRecords\": \"drop\""
        + extraProperties + "}'";
  }

  @Test
  public void aggregationOverAJsonStreamWithMalformedMessagesGivesExactTotalsOnFlink() throws Exception {
    createStream(SERVER.sharedConnection(), "FSQL_AGG", "fsqlagg.>");
    SqlTestData.publishOrdersWithMalformed(SERVER.sharedConnection(), "fsqlagg.orders", 500);
    Pipeline pipeline = FlinkPipelines.batch(2);
    pipeline
        .apply(SqlTransform.query("SELECT region, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY region")
            .withDdlString(ordersTable("FSQL_AGG", "", ", \"stopAtEndOfStream\": true")))
        .apply(MapElements.into(TypeDescriptors.strings())
            .via(r -> r.getString("region") + "=" + r.getInt64("n") + "," + r.getDouble("total")))
        .apply(CollectingSink.into("flink-sql-totals"));

    pipeline.run().waitUntilFinish();

    Map<String, String> totals = new TreeMap<>();
    for (String line : CollectingSink.<String>collected("flink-sql-totals")) {
      totals.put(line.substring(0, line.indexOf('=')), line.substring(line.indexOf('=') + 1));
    }
    assertThat(totals, equalTo(SqlTestData.totals(500)));
  }

  @Test
  public void tumblingWindowsOverALiveReadAreEmittedOnFlink() throws Exception {
    createStream(SERVER.sharedConnection(), "FSQL_LIVE", "fsqllive.>");
    SqlTestData.publishOrdersWithMalformed(SERVER.sharedConnection(), "fsqllive.orders", 100);
    Pipeline pipeline = FlinkPipelines.streaming(1, 1_000);
    pipeline
        .apply(SqlTransform.query(
                "SELECT TUMBLE_START(nats_timestamp, INTERVAL '2' SECOND) AS window_start, COUNT(*) AS n FROM orders"
                    + " GROUP BY TUMBLE(nats_timestamp, INTERVAL '2' SECOND)")
            .withDdlString(ordersTable("FSQL_LIVE", ", nats_timestamp TIMESTAMP", "")))
        .apply(MapElements.into(TypeDescriptors.longs()).via((Row r) -> r.getInt64("n")))
        .apply(CollectingSink.into("flink-sql-windows"));

    PipelineResult result = pipeline.run();
    try {
      // The read is live and never ends: windows come out only because its watermark passes them.
      List<Long> counts = CollectingSink.await("flink-sql-windows",
          (List<Long> seen) -> seen.stream().mapToLong(Long::longValue).sum() >= 100, 180_000);
      assertThat("orders counted over the emitted windows", counts.stream().mapToLong(Long::longValue).sum(), equalTo(100L));
    } finally {
      result.cancel();
    }
  }
}
