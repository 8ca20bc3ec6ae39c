package dev.natsio.examples.flink;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.Default;
import org.apache.beam.sdk.options.Description;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.Combine;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.transforms.windowing.FixedWindows;
import org.apache.beam.sdk.transforms.windowing.IntervalWindow;
import org.apache.beam.sdk.transforms.windowing.Window;
import org.joda.time.Duration;

/**
 * A streaming job for a Flink cluster: a live read of a stream, fixed event-time windows on the
 * messages' publish time, one count per window written back to JetStream with the window as
 * message id, so a window a restarted job writes again is stored once.
 *
 * <p>Submit it from the job jar ({@code examples/target/natsio-examples-VERSION-job.jar}):
 *
 * <pre>{@code
 * java -cp natsio-examples-VERSION-job.jar dev.natsio.examples.flink.WindowedCounts \
 *   --runner=FlinkRunner --flinkMaster=jobmanager:8081 --filesToStage=natsio-examples-VERSION-job.jar \
 *   --streaming=true --attachedMode=false --parallelism=2 \
 *   --checkpointingInterval=10000 --numberOfExecutionRetries=100 --executionRetryDelay=2000 \
 *   --natsUrl=nats://nats:4222 --inputStream=ORDERS --outputSubject=counts.orders
 * }</pre>
 *
 * <p>Each result has the subject {@code --outputSubject}, the count as payload and the window's
 * start (epoch milliseconds) in the {@value #WINDOW_START} header. The step names are stable, so
 * the job can be stopped with a savepoint and started again from it (docs/deploying.md).
 */
public final class WindowedCounts {
  /** The header holding a result's window start, in epoch milliseconds. */
  public static final String WINDOW_START = "Window-Start";

  /** The job's options. */
  public interface Options extends NatsJobOptions {
    /** The window length in seconds. */
    @Description("Window length in seconds")
    @Default.Long(1)
    long getWindowSeconds();

    /** Sets {@link #getWindowSeconds()}. */
    void setWindowSeconds(long windowSeconds);
  }

  private WindowedCounts() {}

  /** Builds the job from the command line and submits it. */
  public static void main(String[] args) {
    Options options = PipelineOptionsFactory.fromArgs(args).withValidation().as(Options.class);
    Pipeline pipeline = Pipeline.create(options);
    String inputStream = options.getInputStream();
    pipeline
        .apply("Read", NatsIO.read().withServers(options.getNatsUrl()).withStream(inputStream))
        .apply("Window", Window.<NatsMessage>into(FixedWindows.of(Duration.standardSeconds(options.getWindowSeconds()))))
        .apply("Count", Combine.globally(Count.<NatsMessage>combineFn()).withoutDefaults())
        .apply("Format", ParDo.of(new FormatFn(options.getOutputSubject())))
        .apply("Write", NatsIO.write().withServers(options.getNatsUrl()).withJetStream()
            .withMessageIdFn(result -> inputStream + ":" + result.getHeaders().get(WINDOW_START).get(0)));
    pipeline.run();
  }

  /** One result message per window: the count, with the window's start in a header. */
  private static final class FormatFn extends DoFn<Long, NatsMessage> {
    private final String subject;

    FormatFn(String subject) {
      this.subject = subject;
    }

    @ProcessElement
    public void process(@Element Long count, BoundedWindow window, OutputReceiver<NatsMessage> out) {
      long start = ((IntervalWindow) window).start().getMillis();
      out.output(NatsMessage.create(subject, Long.toString(count).getBytes(StandardCharsets.UTF_8),
          Map.of(WINDOW_START, List.of(Long.toString(start)))));
    }
  }
}
