package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.CoreMarkers;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.api.ConsumerConfiguration;
import io.nats.client.api.RetentionPolicy;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * Scenarios 6 to 8 on Flink: the durable consumer acks after checkpoints; a Core queue group's
 * readers share its messages; bad input fails the job clearly.
 */
public class FlinkDeliveryModesTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @ClassRule public static final NatsTestServer SECURED = NatsTestServer.builder().withUserPassword("alice", "right-password").build();

  /** Fails its task once, after {@code after} elements, to make Flink restore the last checkpoint. */
  static final class FailOnce extends DoFn<NatsMessage, NatsMessage> {
    static final AtomicBoolean FAILED = new AtomicBoolean();
    private final int after;
    private transient int seen;

    FailOnce(int after) {
      this.after = after;
    }

    @ProcessElement
    public void process(@Element NatsMessage message, OutputReceiver<NatsMessage> out) {
      if (++seen > after && FAILED.compareAndSet(false, true)) {
        throw new IllegalStateException("injected task failure");
      }
      out.output(message);
    }
  }

  @Test
  public void durableConsumerOnAWorkQueueProcessesAndAcksEveryMessageAcrossATaskFailure() throws Exception {
    int count = 3_000;
    try (Connection connection = SERVER.connect()) {
      createStream(connection, StreamConfiguration.builder().name("work").subjects("work.>")
          .retentionPolicy(RetentionPolicy.WorkQueue).storageType(StorageType.File).build());
      publish(connection, "work.item", count);
    }
    String id = "durable-" + UUID.randomUUID();
    FlinkPipelineOptions options = FlinkPipelines.options(2);
    options.setStreaming(true);
    options.setAttachedMode(false);
    options.setCheckpointingInterval(500L);
    options.setNumberOfExecutionRetries(3);
    options.setExecutionRetryDelay(500L);
    Pipeline pipeline = Pipeline.create(options);
    pipeline
        .apply(NatsIO.read().withServers(SERVER.url()).withStream("work")
            .withConsumerConfiguration(ConsumerConfiguration.builder().durable("workers").ackWait(Duration.ofSeconds(5)).maxAckPending(10_000).build()))
        .apply(ParDo.of(new FailOnce(1_000)))
        .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
        .apply(CollectingSink.into(id));
    PipelineResult result = pipeline.run();
    try (Connection connection = SERVER.connect()) {
      long deadline = System.currentTimeMillis() + 150_000;
      while (connection.jetStreamManagement().getStreamInfo("work").getStreamState().getMsgCount() > 0) {
        if (System.currentTimeMillis() > deadline) {
          throw new AssertionError("work-queue still holds "
              + connection.jetStreamManagement().getStreamInfo("work").getStreamState().getMsgCount() + " unacknowledged messages");
        }
        Thread.sleep(250);
      }
      List<Long> processed = CollectingSink.collected(id);
      Set<Long> distinct = new TreeSet<>(processed);
      assertThat(FailOnce.FAILED.get(), equalTo(true));
      assertThat(distinct, equalTo(LongStream.rangeClosed(1, count).boxed().collect(Collectors.toCollection(TreeSet::new))));
    } finally {
      result.cancel();
    }
  }

  @Test
  public void coreQueueGroupReadersAtParallelismTwoShareTheMessagesAndNoneGetsOneTwice() throws Exception {
    String id = "core-group-" + UUID.randomUUID();
    Pipeline pipeline = FlinkPipelines.streaming(2, 1_000);
    pipeline
        .apply(NatsIO.read().withServers(SERVER.url()).withSubject("sensors.>").withQueueGroup("ingest").withNumReaders(2))
        .apply(MapElements.into(TypeDescriptors.strings()).via(NatsMessage::getPayloadAsString))
        .apply(CollectingSink.into(id));
    PipelineResult result = pipeline.run();
    try (Connection publisher = SERVER.connect()) {
      long deadline = System.currentTimeMillis() + 120_000;
      while (SERVER.queueSubscriberDeliveries("sensors.>", "ingest").size() < 2) {
        if (System.currentTimeMillis() > deadline) {
          throw new AssertionError("the two readers did not subscribe within 120 s");
        }
        Thread.sleep(100); // Core messages published before a subscription exists are lost by design.
      }
      for (int i = 0; i < 2_000; i++) {
        publisher.publish("sensors.t" + (i % 4), ("p" + i).getBytes(java.nio.charset.StandardCharsets.UTF_8));
      }
      publisher.flush(Duration.ofSeconds(10));

      int markers = CoreMarkers.awaitEveryQueueMemberOutputAMarker(SERVER, publisher, "sensors.t0", "sensors.>", "ingest", 2_000,
          () -> CollectingSink.collected(id));
      List<String> received = CoreMarkers.withoutMarkers(CollectingSink.collected(id));
      assertThat(new TreeSet<>(received).size(), equalTo(received.size()));
      assertThat(received.size(), equalTo(2_000));
      List<Long> deliveries = SERVER.queueSubscriberDeliveries("sensors.>", "ingest");
      assertThat(deliveries.get(0) + deliveries.get(1), equalTo(2_000L + markers));
      assertThat("both readers took part: " + deliveries, Math.min(deliveries.get(0), deliveries.get(1)) > 0, equalTo(true));
    } finally {
      result.cancel();
    }
  }

  @Test
  public void missingStreamFailsTheFlinkJobWithAnErrorNamingIt() {
    Pipeline pipeline = FlinkPipelines.batch(2);
    pipeline.apply(NatsIO.read().withServers(SERVER.url()).withStream("no_such_stream").withStopAtEndOfStream());

    Exception error = assertThrows(Exception.class, () -> pipeline.run().waitUntilFinish());

    assertThat(causeChain(error), containsString("stream 'no_such_stream' does not exist on " + SERVER.url()));
  }

  /**
   * The unbounded read on Flink streaming is a Flink source; its refusal fails the job once Flink's
   * restart strategy gives up (with checkpointing on it otherwise retries without end).
   */
  @Test
  public void missingStreamFailsAStreamingFlinkJobWithAnErrorNamingIt() {
    FlinkPipelineOptions options = FlinkPipelines.options(2);
    options.setStreaming(true);
    options.setCheckpointingInterval(1_000L);
    options.setNumberOfExecutionRetries(0);
    Pipeline pipeline = Pipeline.create(options);
    pipeline.apply(NatsIO.read().withServers(SERVER.url()).withStream("no_such_live_stream"));

    Exception error = assertThrows(Exception.class, () -> pipeline.run().waitUntilFinish());

    assertThat(causeChain(error), containsString("stream 'no_such_live_stream' does not exist on " + SERVER.url()));
  }

  @Test
  public void wrongCredentialsFailAStreamingFlinkJobWithAnErrorNamingTheServerButNotThePassword() {
    FlinkPipelineOptions options = FlinkPipelines.options(2);
    options.setStreaming(true);
    options.setCheckpointingInterval(1_000L);
    options.setNumberOfExecutionRetries(0);
    Pipeline pipeline = Pipeline.create(options);
    String url = SECURED.url().replace("nats://", "nats://alice:wrong-password@");
    pipeline.apply(NatsIO.read().withServers(url).withStream("any"));

    Exception error = assertThrows(Exception.class, () -> pipeline.run().waitUntilFinish());

    String chain = causeChain(error);
    assertThat(chain, containsString(SECURED.url()));
    assertThat(chain.toLowerCase(), containsString("authentication"));
    assertThat(chain.contains("wrong-password"), equalTo(false));
  }

  @Test
  public void wrongCredentialsFailTheFlinkJobWithAnErrorNamingTheServerButNotThePassword() {
    Pipeline pipeline = FlinkPipelines.batch(2);
    String url = SECURED.url().replace("nats://", "nats://alice:wrong-password@");
    pipeline.apply(NatsIO.read().withServers(url).withStream("any").withStopAtEndOfStream());

    Exception error = assertThrows(Exception.class, () -> pipeline.run().waitUntilFinish());

    String chain = causeChain(error);
    assertThat(chain, containsString(SECURED.url()));
    assertThat(chain.toLowerCase(), containsString("authentication"));
    assertThat(chain.contains("wrong-password"), equalTo(false));
  }

  /** Every message in the cause chain: Flink wraps the user's error in several layers. */
  private static String causeChain(Throwable error) {
    StringBuilder chain = new StringBuilder();
    for (Throwable t = error; t != null; t = t.getCause()) {
      chain.append(t.getMessage()).append('\n');
    }
    return chain.toString();
  }
}
