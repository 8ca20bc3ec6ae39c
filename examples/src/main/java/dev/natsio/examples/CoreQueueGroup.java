package dev.natsio.examples;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import io.nats.client.Connection;
import io.nats.client.Nats;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.TypeDescriptors;

/**
 * A Core NATS subject read through a queue group: the server hands each message to one member of
 * the group, so several pipelines (or other subscribers) in the group share the load. Core NATS
 * keeps nothing: a message published while no member listens is gone (at-most-once).
 *
 * <p>A publisher thread sends a sensor reading every 10 ms until the pipeline has read {@value
 * #READINGS} of them ({@code withMaxNumRecords} makes the read bounded); the pipeline counts them
 * per subject.
 *
 * <pre>
 * scripts/example.sh CoreQueueGroup
 * </pre>
 */
public final class CoreQueueGroup {
  static final int READINGS = 20;

  private CoreQueueGroup() {}

  /** Publishes readings while the pipeline reads them; {@code args} are Beam options. */
  public static void main(String[] args) throws Exception {
    ExampleOptions options = PipelineOptionsFactory.fromArgs(args).withValidation().as(ExampleOptions.class);
    String url = options.getNatsUrl();
    Pipeline pipeline = Pipeline.create(options);
    pipeline
        .apply("Read sensors", NatsIO.read().withServers(url).withSubject("example.sensors.>").withQueueGroup("ingest")
            .withMaxNumRecords(READINGS))
        .apply("Subject", MapElements.into(TypeDescriptors.strings()).via((NatsMessage m) -> m.getSubject()))
        .apply("Count", Count.perElement())
        .apply("Print", ParDo.of(new DoFn<KV<String, Long>, Void>() {
          @ProcessElement
          public void process(@Element KV<String, Long> count) {
            System.out.printf("%s: %d readings%n", count.getKey(), count.getValue());
          }
        }));

    AtomicBoolean done = new AtomicBoolean();
    Thread publisher = new Thread(() -> {
      try (Connection connection = Nats.connect(url)) {
        for (int i = 0; !done.get(); i++) {
          connection.publish("example.sensors." + (i % 2 == 0 ? "a" : "b"), ("{\"reading\": " + i + "}").getBytes(StandardCharsets.UTF_8));
          Thread.sleep(10);
        }
      } catch (Exception e) {
        if (!done.get()) {
          e.printStackTrace();
        }
      }
    }, "publisher");
    publisher.start();
    try {
      pipeline.run().waitUntilFinish();
    } finally {
      done.set(true);
      publisher.join();
    }
    System.out.printf("Read %d readings from example.sensors.> through queue group 'ingest'%n", READINGS);
  }
}
