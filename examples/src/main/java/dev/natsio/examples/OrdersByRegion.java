package dev.natsio.examples;

import dev.natsio.beam.NatsFormat;
import dev.natsio.beam.NatsIO;
import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.Nats;
import io.nats.client.api.StreamConfiguration;
import java.nio.charset.StandardCharsets;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.transforms.Group;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.Sum;
import org.apache.beam.sdk.values.Row;

/**
 * Bounded JSON orders to rows to totals per region: the pipeline most projects start from.
 *
 * <p>It fills the stream {@code example_orders} with {@value #ORDERS} JSON orders and two malformed
 * payloads, reads the stream to its end, parses the payloads into rows with {@link
 * NatsFormat#json} (dropping the malformed ones) and prints each region's order count and total.
 * It needs nothing but {@code nats-io} and a runner: no Avro, no Arrow.
 *
 * <pre>
 * scripts/example.sh OrdersByRegion                           # Direct runner
 * scripts/example.sh OrdersByRegion --runner=FlinkRunner      # Flink, in a local mini-cluster
 * </pre>
 */
public final class OrdersByRegion {
  static final int ORDERS = 60;
  static final String[] REGIONS = {"eu", "us", "apac"};
  static final Schema ORDER =
      Schema.builder().addInt64Field("id").addStringField("region").addDoubleField("amount").build();

  private OrdersByRegion() {}

  /** The amount of order {@code id}: whole cents, so the totals are exact. */
  static double amountOf(int id) {
    return 10 + (id % 7) * 2.5;
  }

  /** Publishes the orders and runs the pipeline; {@code args} are Beam options. */
  public static void main(String[] args) throws Exception {
    ExampleOptions options = PipelineOptionsFactory.fromArgs(args).withValidation().as(ExampleOptions.class);
    String url = options.getNatsUrl();
    try (Connection connection = Nats.connect(url)) {
      Streams.recreate(connection, StreamConfiguration.builder().name("example_orders").subjects("example.orders.>").build());
      JetStream js = connection.jetStream();
      for (int id = 0; id < ORDERS; id++) {
        String region = REGIONS[id % REGIONS.length];
        String json = String.format("{\"id\": %d, \"region\": \"%s\", \"amount\": %.2f}", id, region, amountOf(id));
        js.publish("example.orders." + region, json.getBytes(StandardCharsets.UTF_8));
      }
      js.publish("example.orders.eu", "not json".getBytes(StandardCharsets.UTF_8));
      js.publish("example.orders.us", "{\"id\": \"seven\"}".getBytes(StandardCharsets.UTF_8));
    }
    System.out.printf("Published %d orders and 2 malformed payloads to stream 'example_orders' at %s%n", ORDERS, url);

    Pipeline pipeline = Pipeline.create(options);
    pipeline
        .apply("Read orders", NatsIO.read().withServers(url).withStream("example_orders").withStopAtEndOfStream())
        .apply("Parse JSON", NatsIO.parsePayloads(NatsFormat.json(ORDER)).withDropBadRecords())
        .apply("Count and sum per region", Group.<Row>byFieldNames("region")
            .aggregateField("amount", Count.combineFn(), "orders")
            .aggregateField("amount", Sum.ofDoubles(), "total"))
        .apply("Print", ParDo.of(new PrintFn()));
    PipelineResult.State state = pipeline.run().waitUntilFinish();
    System.out.println("Pipeline finished: " + state);
  }

  /** Prints one line per region: {@code region eu: 20 orders, total 290.00}. */
  static final class PrintFn extends DoFn<Row, Void> {
    @ProcessElement
    public void process(@Element Row total) {
      System.out.printf("region %s: %d orders, total %.2f%n", total.getRow("key").getString("region"),
          total.getRow("value").getInt64("orders"), total.getRow("value").getDouble("total"));
    }
  }
}
