package dev.natsio.examples;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.JetStreamApiException;
import io.nats.client.JetStreamManagement;
import io.nats.client.Nats;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import java.nio.charset.StandardCharsets;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.Distinct;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptors;

/**
 * The README's demo: fills a JetStream stream with orders, then counts them per region with a
 * bounded {@code NatsIO.read()} on the Direct runner.
 *
 * <p>Run it with {@code ./scripts/demo.sh}, which starts a local nats-server when none is running.
 * The server URL is the option {@code --natsUrl} (default {@code nats://127.0.0.1:4222}). It prints
 * "exactly once" only after counting what it read against what it published.
 */
public final class Demo {
  private static final String STREAM = "demo_orders";
  private static final String[] REGIONS = {"eu", "us", "apac"};
  private static final int ORDERS = 3_000;

  private Demo() {}

  public static void main(String[] args) throws Exception {
    ExampleOptions options = PipelineOptionsFactory.fromArgs(args).withValidation().as(ExampleOptions.class);
    String url = options.getNatsUrl();
    long[] sequences = publishOrders(url);
    System.out.printf("Published %,d orders to stream '%s' (sequences %d..%d) at %s%n", ORDERS, STREAM, sequences[0], sequences[1], url);

    Pipeline pipeline = Pipeline.create(options);
    PCollection<NatsMessage> orders = pipeline.apply("Read orders", NatsIO.read().withServers(url).withStream(STREAM)
        .withStartSequence(sequences[0]).withStopSequence(sequences[1] + 1));
    orders
        .apply("Region", MapElements.into(TypeDescriptors.strings()).via((NatsMessage m) -> m.getSubject()))
        .apply("Count per region", Count.perElement())
        .apply("Print", ParDo.of(new PrintFn()));
    // What the closing line claims is checked first: every message once, none twice, none missing.
    orders.apply("Count reads", ParDo.of(ExampleCounters.counting("read")));
    orders
        .apply("Sequence", MapElements.into(TypeDescriptors.longs()).via((NatsMessage m) -> m.getSequence()))
        .apply("Distinct", Distinct.create())
        .apply("Count distinct", ParDo.of(ExampleCounters.counting("distinct")));
    PipelineResult result = pipeline.run();
    result.waitUntilFinish();
    long read = ExampleCounters.total(result, "read");
    long distinct = ExampleCounters.total(result, "distinct");
    if (read == ORDERS && distinct == ORDERS) {
      System.out.printf("Done: read %,d messages, %,d distinct sequences, %,d published: every order exactly once.%n",
          read, distinct, ORDERS);
    } else {
      System.out.printf("MISMATCH: read %,d messages, %,d distinct sequences, but %,d were published.%n", read, distinct, ORDERS);
      System.exit(1);
    }
  }

  /** Publishes this run's orders and returns their first and last stream sequence. */
  private static long[] publishOrders(String url) throws Exception {
    try (Connection connection = Nats.connect(url)) {
      JetStreamManagement jsm = connection.jetStreamManagement();
      try {
        jsm.getStreamInfo(STREAM);
      } catch (JetStreamApiException e) {
        jsm.addStream(StreamConfiguration.builder().name(STREAM).subjects("orders.>").storageType(StorageType.File).build());
      }
      JetStream js = connection.jetStream();
      long first = -1;
      long last = -1;
      for (int i = 0; i < ORDERS; i++) {
        String region = REGIONS[i % REGIONS.length];
        byte[] payload = ("{\"order\":" + i + ",\"region\":\"" + region + "\"}").getBytes(StandardCharsets.UTF_8);
        last = js.publish("orders." + region, payload).getSeqno();
        if (first < 0) {
          first = last;
        }
      }
      return new long[] {first, last};
    }
  }

  private static final class PrintFn extends DoFn<KV<String, Long>, Void> {

    @ProcessElement
    public void process(@Element KV<String, Long> count) {
      System.out.printf("  %-14s %,6d orders%n", count.getKey(), count.getValue());
    }
  }
}
