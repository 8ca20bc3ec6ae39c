package dev.natsio.examples;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.Nats;
import io.nats.client.api.StreamConfiguration;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptionsFactory;

/**
 * Copies a stream into another, under new subjects, safely re-runnable: {@code withSubjectFn}
 * names each copy's subject and {@code withMessageIdFn} gives it the id {@code stream:sequence}
 * of its original. JetStream stores a message id once within the target stream's duplicate window,
 * so running the copy again (after a failure, or by mistake) stores nothing twice.
 *
 * <p>It runs the copy twice and prints how many messages the copy holds after each run. The
 * duplicate window bounds this: a re-run after the window stores everything again, so the target
 * here keeps a 10-minute window (docs/writing.md says how to size it).
 *
 * <pre>
 * scripts/example.sh CopyStream                          # Direct runner
 * scripts/example.sh CopyStream --runner=FlinkRunner     # Flink
 * </pre>
 */
public final class CopyStream {
  static final int MESSAGES = 50;

  private CopyStream() {}

  /** Fills the source stream, then copies it twice; {@code args} are Beam options. */
  public static void main(String[] args) throws Exception {
    ExampleOptions options = PipelineOptionsFactory.fromArgs(args).withValidation().as(ExampleOptions.class);
    String url = options.getNatsUrl();
    try (Connection connection = Nats.connect(url)) {
      Streams.recreate(connection, StreamConfiguration.builder().name("example_source").subjects("example.source.>").build());
      Streams.recreate(connection, StreamConfiguration.builder().name("example_copy").subjects("example.copy.>")
          .duplicateWindow(Duration.ofMinutes(10)).build());
      JetStream js = connection.jetStream();
      for (int i = 0; i < MESSAGES; i++) {
        js.publish("example.source." + (i % 2 == 0 ? "eu" : "us"), ("message " + i).getBytes(StandardCharsets.UTF_8));
      }
      System.out.printf("Published %d messages to stream 'example_source'%n", MESSAGES);

      for (int run = 1; run <= 2; run++) {
        Pipeline pipeline = Pipeline.create(options);
        pipeline
            .apply("Read source", NatsIO.read().withServers(url).withStream("example_source").withStopAtEndOfStream())
            .apply("Write copy", NatsIO.write().withServers(url).withJetStream()
                // example.source.eu -> example.copy.eu
                .withSubjectFn((NatsMessage m) -> "example.copy." + m.getSubject().substring("example.source.".length()))
                // The same id on every run: a re-run within the duplicate window stores nothing again.
                .withMessageIdFn((NatsMessage m) -> m.getStream() + ":" + m.getSequence()));
        pipeline.run().waitUntilFinish();
        long stored = connection.jetStreamManagement().getStreamInfo("example_copy").getStreamState().getMsgCount();
        System.out.printf("After run %d the copy holds %d messages%n", run, stored);
      }
    }
  }
}
