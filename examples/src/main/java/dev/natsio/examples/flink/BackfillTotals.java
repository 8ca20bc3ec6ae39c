package dev.natsio.examples.flink;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import io.nats.client.Connection;
import io.nats.client.Nats;
import java.nio.charset.StandardCharsets;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.Default;
import org.apache.beam.sdk.options.Description;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.apache.beam.sdk.values.TypeDescriptors;

/**
 * A batch job for a Flink cluster: a bounded backfill of a stream up to its last message when the
 * job is built, read in splits spread over the task slots, counted per subject; one result per
 * subject is written to JetStream with the range in its message id.
 *
 * <pre>{@code
 * java -cp natsio-examples-VERSION-job.jar dev.natsio.examples.flink.BackfillTotals \
 *   --runner=FlinkRunner --flinkMaster=jobmanager:8081 --filesToStage=natsio-examples-VERSION-job.jar \
 *   --streaming=false --parallelism=4 \
 *   --natsUrl=nats://nats:4222 --inputStream=ORDERS --outputSubject=totals.orders
 * }</pre>
 *
 * <p>Each result has the subject {@code --outputSubject} and the payload {@code "<subject> <count>"};
 * its message id names the stream, the subject and the range's end, so running the job again over
 * the same range (within the output stream's duplicate window) stores nothing twice.
 */
public final class BackfillTotals {
  /** The job's options. */
  public interface Options extends NatsJobOptions {
    /** Sequences per split of the bounded read. */
    @Description("Stream sequences per split of the bounded read")
    @Default.Long(5_000)
    long getSplitSize();

    /** Sets {@link #getSplitSize()}. */
    void setSplitSize(long splitSize);
  }

  private BackfillTotals() {}

  /** Builds the job from the command line and submits it. */
  public static void main(String[] args) throws Exception {
    Options options = PipelineOptionsFactory.fromArgs(args).withValidation().as(Options.class);
    String stream = options.getInputStream();
    long stop = lastSequence(options.getNatsUrl(), stream) + 1;
    String subject = options.getOutputSubject();
    Pipeline pipeline = Pipeline.create(options);
    pipeline
        .apply("Read", NatsIO.read().withServers(options.getNatsUrl()).withStream(stream)
            .withStopSequence(stop).withSplitSize(options.getSplitSize()))
        .apply("Subject", MapElements.into(TypeDescriptors.strings()).via(NatsMessage::getSubject))
        .apply("Count", Count.perElement())
        .apply("Format", MapElements.into(TypeDescriptor.of(NatsMessage.class))
            .via((KV<String, Long> total) -> NatsMessage.create(subject,
                (total.getKey() + " " + total.getValue()).getBytes(StandardCharsets.UTF_8))))
        .apply("Write", NatsIO.write().withServers(options.getNatsUrl()).withJetStream()
            .withMessageIdFn(result -> stream + ":" + result.getPayloadAsString().split(" ")[0] + ":" + stop));
    pipeline.run();
  }

  /** The stream's last sequence now: the backfill's range ends there. */
  private static long lastSequence(String servers, String stream) throws Exception {
    try (Connection connection = Nats.connect(servers)) {
      return connection.jetStreamManagement().getStreamInfo(stream).getStreamState().getLastSequence();
    }
  }
}
