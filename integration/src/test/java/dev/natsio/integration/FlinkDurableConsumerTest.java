package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.JetStreamManagement;
import io.nats.client.api.ConsumerConfiguration;
import io.nats.client.api.RetentionPolicy;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import java.time.Duration;
import java.util.List;
import java.util.TreeSet;
import java.util.UUID;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * The durable-consumer read on Flink streaming: messages wait for a checkpoint longer than the
 * consumer's ack wait and are still delivered once; at parallelism 2 two pullers share the consumer.
 */
public class FlinkDurableConsumerTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  private static final String CONNECTION_NAME = "natsio-durable-pullers";

  private static void createWorkQueue(Connection connection, String name, Duration ackWait) throws Exception {
    createStream(connection, StreamConfiguration.builder().name(name).subjects(name + ".>")
        .retentionPolicy(RetentionPolicy.WorkQueue).storageType(StorageType.File).build());
    connection.jetStreamManagement().addOrUpdateConsumer(name,
        ConsumerConfiguration.builder().durable("workers").ackWait(ackWait).maxAckPending(20_000).build());
  }

  private static void awaitEmpty(JetStreamManagement jsm, String stream) throws Exception {
    long deadline = System.currentTimeMillis() + 180_000;
    long left;
    while ((left = jsm.getStreamInfo(stream).getStreamState().getMsgCount()) > 0) {
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("work-queue '" + stream + "' still holds " + left + " unacknowledged messages");
      }
      Thread.sleep(250);
    }
  }

  /**
   * Until both pullers have a pull request waiting on the consumer: the readers' connection has an
   * inbox subscription per puller and one for its requests, and each has had a message (a puller's
   * first is the heartbeat of its waiting pull request).
   */
  private static void awaitBothPullersWaiting() throws Exception {
    long deadline = System.currentTimeMillis() + 120_000;
    List<Long> inboxes;
    while ((inboxes = SERVER.inboxDeliveries(CONNECTION_NAME)).size() < 3 || inboxes.stream().anyMatch(n -> n == 0)) {
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("two pullers never waited on consumer 'workers': messages per inbox subscription " + inboxes);
      }
      Thread.sleep(100);
    }
  }

  /** Every delivery the consumer made, redeliveries included: its consumer sequence. */
  private static long deliveries(JetStreamManagement jsm, String stream) throws Exception {
    return jsm.getConsumerInfo(stream, "workers").getDelivered().getConsumerSequence();
  }

  private static NatsIO.Read read(String stream) {
    return NatsIO.read().withConnectionConfiguration(
            NatsIO.ConnectionConfiguration.create(SERVER.url()).withConnectionName(CONNECTION_NAME))
        .withStream(stream).withConsumer("workers");
  }

  @Test
  public void messagesWaitingForCheckpointsLongerThanTheAckWaitAreDeliveredOnce() throws Exception {
    int perSecond = 1_000;
    int seconds = 6;
    String id = "slow-checkpoints-" + UUID.randomUUID();
    try (Connection connection = SERVER.connect()) {
      JetStreamManagement jsm = connection.jetStreamManagement();
      createWorkQueue(connection, "slow", Duration.ofSeconds(1));
      Pipeline pipeline = FlinkPipelines.streaming(2, 2_500);
      pipeline.apply(read("slow"))
          .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
          .apply(CollectingSink.into(id));
      PipelineResult result = pipeline.run();
      try {
        for (int second = 0; second < seconds; second++) { // Traffic spread over several checkpoints.
          long next = System.currentTimeMillis() + 1_000;
          publish(connection, "slow.item", perSecond);
          Thread.sleep(Math.max(0, next - System.currentTimeMillis()));
        }
        awaitEmpty(jsm, "slow");

        // Acks follow the read's commit, not the downstream steps': wait for those too.
        int count = perSecond * seconds;
        List<Long> processed = CollectingSink.<Long>await(id, seen -> new TreeSet<>(seen).size() >= count, 60_000);
        assertThat(new TreeSet<>(processed), equalTo(LongStream.rangeClosed(1, count).boxed().collect(Collectors.toCollection(TreeSet::new))));
        assertThat("messages processed more than once", processed.size() - count, equalTo(0));
        // Also the deliveries still on their way when the last ack emptied the stream.
        assertThat("redeliveries by the server", deliveries(jsm, "slow") - count, equalTo(0L));
      } finally {
        result.cancel();
      }
    }
  }

  @Test
  public void aWorkQueueIsDrainedByTwoPullersAtParallelismTwoEachMessageOnce() throws Exception {
    int count = 20_000;
    String id = "two-pullers-" + UUID.randomUUID();
    try (Connection connection = SERVER.connect()) {
      createWorkQueue(connection, "shared", Duration.ofSeconds(30));
    }
    Pipeline pipeline = FlinkPipelines.streaming(2, 1_000);
    pipeline.apply(read("shared"))
        .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
        .apply(CollectingSink.into(id));
    PipelineResult result = pipeline.run();
    try (Connection connection = SERVER.connect()) {
      JetStreamManagement jsm = connection.jetStreamManagement();
      // Published before both pullers ask, the whole queue could go to the first one to start.
      awaitBothPullersWaiting();
      publish(connection, "shared.item", count);
      awaitEmpty(jsm, "shared");

      List<Long> processed = CollectingSink.<Long>await(id, seen -> new TreeSet<>(seen).size() >= count, 60_000);
      assertThat(new TreeSet<>(processed), equalTo(LongStream.rangeClosed(1, count).boxed().collect(Collectors.toCollection(TreeSet::new))));
      assertThat("messages processed more than once", processed.size() - count, equalTo(0));
      assertThat("redeliveries by the server", deliveries(jsm, "shared") - count, equalTo(0L));
      List<Long> perPuller = SERVER.inboxDeliveries(CONNECTION_NAME);
      assertThat("inbox subscriptions (pullers, request inbox): " + perPuller, perPuller.size(), greaterThanOrEqualTo(3));
      // Both took a share, beyond the few status messages (heartbeats) an idle puller gets.
      assertThat("both pullers delivered messages: " + perPuller, perPuller.get(perPuller.size() - 2), greaterThan(count / 100L));
    } finally {
      result.cancel();
    }
  }
}
