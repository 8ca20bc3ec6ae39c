package dev.natsio.examples;

import dev.natsio.beam.NatsFormat;
import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.JetStreamManagement;
import io.nats.client.JetStreamSubscription;
import io.nats.client.Message;
import io.nats.client.Nats;
import io.nats.client.PullSubscribeOptions;
import io.nats.client.api.StreamConfiguration;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.TreeSet;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.runners.flink.FlinkRunner;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.transforms.Combine;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.Sum;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.transforms.windowing.FixedWindows;
import org.apache.beam.sdk.transforms.windowing.IntervalWindow;
import org.apache.beam.sdk.transforms.windowing.Window;
import org.apache.beam.sdk.values.Row;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Instant;

/**
 * A streaming Flink job: a live read of JSON trades, totals per one-minute event-time window,
 * each total written back to JetStream, with checkpointing on.
 *
 * <p>The read stamps each trade with the time in its {@code ts} field ({@code
 * NatsFormat.timestampFn}) and allows 5 s of disorder: the watermark trails the latest trade's
 * time by 5 s, and once the read has caught up with the stream it moves on to now less 5 s, so
 * the last window closes even when no later trade arrives. Each window's
 * total is published to {@code example.totals} with its window start as message id, so a replay
 * after a restore from a checkpoint stores nothing twice.
 *
 * <p>The Flink options are the ones a production job wants: streaming mode, checkpoints every
 * few seconds (here 2 s; 10 s to a minute in production) with a pause between them, a checkpoint
 * timeout, and retries on failure. The example publishes trades spread over {@value #WINDOWS}
 * past minutes, starts the job detached, prints each window total as it arrives and cancels the
 * job once all {@value #WINDOWS} have.
 *
 * <pre>
 * scripts/example.sh StreamingTotals
 * </pre>
 */
public final class StreamingTotals {
  static final int WINDOWS = 3;
  static final int TRADES_PER_WINDOW = 6;
  static final Schema TRADE = Schema.builder().addInt64Field("id").addDoubleField("amount").addDateTimeField("ts").build();

  private StreamingTotals() {}

  /** The amount of trade {@code id}. */
  static double amountOf(int id) {
    return 1 + id % 4;
  }

  /** Publishes trades, runs the job until every window total is back; {@code args} are Beam options. */
  public static void main(String[] args) throws Exception {
    ExampleOptions exampleOptions = PipelineOptionsFactory.fromArgs(args).withValidation().as(ExampleOptions.class);
    String url = exampleOptions.getNatsUrl();
    FlinkPipelineOptions options = exampleOptions.as(FlinkPipelineOptions.class);
    options.setRunner(FlinkRunner.class);
    options.setStreaming(true);
    options.setCheckpointingInterval(2_000L);       // production: 10 s to 1 min
    options.setMinPauseBetweenCheckpoints(1_000L);  // let the job work between checkpoints
    options.setCheckpointTimeoutMillis(60_000L);
    options.setNumberOfExecutionRetries(3);         // with checkpointing on, Flink otherwise retries forever
    options.setAttachedMode(false);                 // run() returns; this example cancels the job itself

    // Whole minutes in the past, so each window holds exactly its trades.
    Instant firstWindow = new Instant((System.currentTimeMillis() / 60_000 - 10) * 60_000);
    try (Connection connection = Nats.connect(url)) {
      Streams.recreate(connection, StreamConfiguration.builder().name("example_trades").subjects("example.trades").build());
      Streams.recreate(connection, StreamConfiguration.builder().name("example_totals").subjects("example.totals").build());
      JetStream js = connection.jetStream();
      for (int id = 0; id < WINDOWS * TRADES_PER_WINDOW; id++) {
        Instant ts = firstWindow.plus(org.joda.time.Duration.standardSeconds(60L * (id / TRADES_PER_WINDOW) + id % TRADES_PER_WINDOW * 5));
        js.publish("example.trades", String.format("{\"id\": %d, \"amount\": %.1f, \"ts\": \"%s\"}", id, amountOf(id), ts)
            .getBytes(StandardCharsets.UTF_8));
      }
      System.out.printf("Published %d trades over %d minutes from %s%n", WINDOWS * TRADES_PER_WINDOW, WINDOWS, firstWindow);

      NatsFormat json = NatsFormat.json(TRADE);
      Pipeline pipeline = Pipeline.create(options);
      pipeline
          .apply("Read trades", NatsIO.read().withServers(url).withStream("example_trades")
              .withTimestampFn(json.timestampFn("ts"), org.joda.time.Duration.standardSeconds(5)))
          .apply("Parse", NatsIO.parsePayloads(json).withTimestampField("ts").withDropBadRecords())
          .apply("Amount", MapElements.into(TypeDescriptors.doubles()).via((Row trade) -> trade.getDouble("amount")))
          .apply("Minute windows", Window.into(FixedWindows.of(org.joda.time.Duration.standardMinutes(1))))
          .apply("Total", Combine.globally(Sum.ofDoubles()).withoutDefaults())
          .apply("As message", ParDo.of(new ToMessageFn()))
          .apply("Write totals", NatsIO.write().withServers(url).withJetStream()
              .withMessageIdFn((NatsMessage total) -> new String(total.getPayload(), StandardCharsets.UTF_8)));
      PipelineResult job = pipeline.run();
      try {
        printTotals(connection);
      } finally {
        job.cancel();
      }
    }
  }

  /** Prints window totals as they arrive in {@code example_totals}, until all {@value #WINDOWS} have. */
  private static void printTotals(Connection connection) throws Exception {
    JetStreamManagement jsm = connection.jetStreamManagement();
    JetStreamSubscription totals = connection.jetStream().subscribe("example.totals", PullSubscribeOptions.builder().build());
    TreeSet<String> seen = new TreeSet<>();
    long deadline = System.currentTimeMillis() + 180_000;
    while (seen.size() < WINDOWS && System.currentTimeMillis() < deadline) {
      List<Message> batch = totals.fetch(10, Duration.ofSeconds(1));
      for (Message m : batch) {
        String total = new String(m.getData(), StandardCharsets.UTF_8);
        if (seen.add(total)) {
          System.out.println("window total " + total);
        }
      }
    }
    long stored = jsm.getStreamInfo("example_totals").getStreamState().getMsgCount();
    System.out.printf("%d window totals in stream 'example_totals'%n", stored);
  }

  /** A window's total as a message: {@code {"window": "...", "total": 10.0}}. */
  static final class ToMessageFn extends DoFn<Double, NatsMessage> {
    @ProcessElement
    public void process(@Element Double total, BoundedWindow window, OutputReceiver<NatsMessage> out) {
      String json = String.format("{\"window\": \"%s\", \"total\": %.1f}", ((IntervalWindow) window).start(), total);
      out.output(NatsMessage.create("example.totals", json.getBytes(StandardCharsets.UTF_8)));
    }
  }
}
