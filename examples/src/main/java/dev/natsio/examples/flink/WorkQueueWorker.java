package dev.natsio.examples.flink;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import io.nats.client.api.ConsumerConfiguration;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.Default;
import org.apache.beam.sdk.options.Description;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.TypeDescriptor;

/**
 * A streaming job for a Flink cluster that drains a work-queue stream through a durable consumer:
 * each work item is acknowledged (and so deleted from the queue) only after a Flink checkpoint has
 * committed it, and its result is written to JetStream with the item's stream and sequence as
 * message id, so an item redelivered after a failure is stored once.
 *
 * <pre>{@code
 * java -cp natsio-examples-VERSION-job.jar dev.natsio.examples.flink.WorkQueueWorker \
 *   --runner=FlinkRunner --flinkMaster=jobmanager:8081 --filesToStage=natsio-examples-VERSION-job.jar \
 *   --streaming=true --attachedMode=false --parallelism=2 \
 *   --checkpointingInterval=10000 --numberOfExecutionRetries=100 --executionRetryDelay=2000 \
 *   --natsUrl=nats://nats:4222 --inputStream=JOBS --consumer=workers --ackWaitSeconds=30 \
 *   --outputSubject=jobs.done
 * }</pre>
 *
 * <p>NatsIO keeps items that wait for a checkpoint alive with in-progress acks, so the ack wait
 * need not exceed the checkpoint interval; it is how long an item held by a lost TaskManager
 * waits before it is delivered again. The read uses as many pullers as the job's parallelism. Each
 * result has the item's payload and its source sequence in the {@value #SOURCE_SEQUENCE} header.
 */
public final class WorkQueueWorker {
  /** The header holding the work item's sequence in the input stream. */
  public static final String SOURCE_SEQUENCE = "Source-Sequence";

  /** The job's options. */
  public interface Options extends NatsJobOptions {
    /** The durable consumer's name, created if missing. */
    @Description("The durable consumer's name; created if missing")
    @Default.String("workers")
    String getConsumer();

    /** Sets {@link #getConsumer()}. */
    void setConsumer(String consumer);

    /** The consumer's ack wait: how long an item held by a lost worker waits before redelivery. */
    @Description("The consumer's ack wait in seconds: how long an item held by a lost worker waits before redelivery")
    @Default.Long(30)
    long getAckWaitSeconds();

    /** Sets {@link #getAckWaitSeconds()}. */
    void setAckWaitSeconds(long ackWaitSeconds);
  }

  private WorkQueueWorker() {}

  /** Builds the job from the command line and submits it. */
  public static void main(String[] args) {
    Options options = PipelineOptionsFactory.fromArgs(args).withValidation().as(Options.class);
    String stream = options.getInputStream();
    String subject = options.getOutputSubject();
    ConsumerConfiguration consumer = ConsumerConfiguration.builder()
        .durable(options.getConsumer())
        .ackWait(java.time.Duration.ofSeconds(options.getAckWaitSeconds()))
        .maxAckPending(10_000)
        .build();
    Pipeline pipeline = Pipeline.create(options);
    pipeline
        .apply("Read", NatsIO.read().withServers(options.getNatsUrl()).withStream(stream).withConsumerConfiguration(consumer))
        .apply("Process", MapElements.into(TypeDescriptor.of(NatsMessage.class))
            .via((NatsMessage item) -> NatsMessage.create(subject, item.getPayload(),
                Map.of(SOURCE_SEQUENCE, List.of(Long.toString(item.getSequence()))))))
        .apply("Write", NatsIO.write().withServers(options.getNatsUrl()).withJetStream()
            .withMessageIdFn(result -> stream + ":" + result.getHeaders().get(SOURCE_SEQUENCE).get(0)));
    pipeline.run();
  }
}
