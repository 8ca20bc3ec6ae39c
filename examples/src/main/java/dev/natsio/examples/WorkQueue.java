package dev.natsio.examples;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.JetStreamManagement;
import io.nats.client.Nats;
import io.nats.client.api.ConsumerConfiguration;
import io.nats.client.api.RetentionPolicy;
import io.nats.client.api.StreamConfiguration;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.PCollection;

/**
 * A durable consumer draining a work-queue stream. A work-queue stream deletes each message once
 * a consumer acknowledges it, and NatsIO acknowledges only after the runner has committed the
 * bundle that read it (at-least-once): a job that fails before its commit leaves the jobs in the
 * stream for the next run.
 *
 * <p>It queues {@value #JOBS} jobs, reads them through the durable consumer {@code workers}
 * ({@code withMaxNumRecords} bounds the read), and prints how many the stream still holds once
 * the acknowledgements have arrived.
 *
 * <pre>
 * scripts/example.sh WorkQueue
 * </pre>
 *
 * <p>On Flink, acknowledgements are sent when a checkpoint completes: run it in streaming mode
 * with checkpointing on ({@code --streaming --checkpointingInterval=2000}).
 */
public final class WorkQueue {
  static final int JOBS = 30;

  private WorkQueue() {}

  /** Queues jobs, drains them, reports what is left; {@code args} are Beam options. */
  public static void main(String[] args) throws Exception {
    ExampleOptions options = PipelineOptionsFactory.fromArgs(args).withValidation().as(ExampleOptions.class);
    String url = options.getNatsUrl();
    try (Connection connection = Nats.connect(url)) {
      Streams.recreate(connection, StreamConfiguration.builder().name("example_jobs").subjects("example.jobs.>")
          .retentionPolicy(RetentionPolicy.WorkQueue).build());
      JetStream js = connection.jetStream();
      for (int i = 0; i < JOBS; i++) {
        js.publish("example.jobs.resize", ("image-" + i + ".png").getBytes(StandardCharsets.UTF_8));
      }
      System.out.printf("Queued %d jobs on work-queue stream 'example_jobs'%n", JOBS);

      Pipeline pipeline = Pipeline.create(options);
      PCollection<NatsMessage> jobs = pipeline
          .apply("Take jobs", NatsIO.read().withServers(url).withStream("example_jobs")
              .withConsumerConfiguration(ConsumerConfiguration.builder().durable("workers")
                  .ackWait(Duration.ofMinutes(1)).maxAckPending(1_000).build())
              .withMaxNumRecords(JOBS));
      jobs.apply("Count", ParDo.of(ExampleCounters.counting("jobs")));
      jobs.apply("Do the work", ParDo.of(new DoFn<NatsMessage, Void>() {
            @ProcessElement
            public void process(@Element NatsMessage job) {
              // A real job would resize the image named in the payload here.
            }
          }));
      PipelineResult result = pipeline.run();
      result.waitUntilFinish();
      long processed = ExampleCounters.total(result, "jobs");

      JetStreamManagement jsm = connection.jetStreamManagement();
      long left = jsm.getStreamInfo("example_jobs").getStreamState().getMsgCount();
      long deadline = System.currentTimeMillis() + 30_000;
      while (left > 0 && System.currentTimeMillis() < deadline) {
        Thread.sleep(100); // The last acknowledgements travel after the pipeline reports done.
        left = jsm.getStreamInfo("example_jobs").getStreamState().getMsgCount();
      }
      System.out.printf("Processed %d jobs; the work queue now holds %d%n", processed, left);
    }
  }
}
