package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.NatsTestServer;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * A refusal met while a Flink streaming job reads: the job fails once with NatsIO's message, even
 * with a restart strategy that would otherwise restart it without end (the default with checkpointing).
 */
public class FlinkReadRefusalTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  @Test
  public void streamDeletedDuringAStreamingJobFailsItOnceNamingTheStream() throws Exception {
    createStream(SERVER.sharedConnection(), "vanishing", "vanishing.>");
    publish(SERVER.sharedConnection(), "vanishing.x", 50);
    String id = "vanishing-" + UUID.randomUUID();
    FlinkPipelineOptions options = FlinkPipelines.options(1);
    options.setStreaming(true);
    options.setCheckpointingInterval(500L);
    options.setNumberOfExecutionRetries(Integer.MAX_VALUE);
    options.setExecutionRetryDelay(200L);
    Pipeline pipeline = Pipeline.create(options);
    pipeline
        .apply(NatsIO.read().withServers(SERVER.url()).withStream("vanishing"))
        .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
        .apply(CollectingSink.into(id));
    ExecutorService client = Executors.newSingleThreadExecutor(runnable -> {
      Thread thread = new Thread(runnable, "flink-client");
      thread.setDaemon(true);
      return thread;
    });
    try {
      Future<PipelineResult> attached = client.submit(() -> pipeline.run()); // Returns when the job ends.
      CollectingSink.<Long>await(id, seen -> seen.size() >= 50, 120_000);

      SERVER.sharedConnection().jetStreamManagement().deleteStream("vanishing");

      ExecutionException error = assertThrows(ExecutionException.class, () -> attached.get(120, TimeUnit.SECONDS));
      assertThat(causeChain(error), containsString("stream 'vanishing'"));
    } finally {
      client.shutdownNow();
    }
  }

  private static String causeChain(Throwable error) {
    StringBuilder chain = new StringBuilder();
    for (Throwable t = error; t != null; t = t.getCause()) {
      chain.append(t.getMessage()).append('\n');
    }
    return chain.toString();
  }
}
