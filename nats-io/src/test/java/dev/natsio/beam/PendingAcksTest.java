package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import dev.natsio.beam.testing.JetStreamTestData;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.JetStreamManagement;
import io.nats.client.JetStreamSubscription;
import io.nats.client.Message;
import io.nats.client.PullSubscribeOptions;
import io.nats.client.api.ConsumerConfiguration;
import io.nats.client.api.ConsumerInfo;
import io.nats.client.api.RetentionPolicy;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import java.time.Duration;
import java.util.List;
import org.junit.ClassRule;
import org.junit.Test;

/** Messages waiting for their commit: kept alive with in-progress acks, acknowledged, and failures that are not thrown. */
public class PendingAcksTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  /** Pulls {@code count} messages from a new work queue whose consumer has a 1 s ack wait, without acknowledging them. */
  private static List<Message> pullUnacknowledged(Connection connection, String stream, int count) throws Exception {
    JetStreamTestData.createStream(connection, StreamConfiguration.builder().name(stream).subjects(stream + ".>")
        .retentionPolicy(RetentionPolicy.WorkQueue).storageType(StorageType.File).build());
    JetStreamTestData.publish(connection, stream + ".x", count);
    connection.jetStreamManagement().addOrUpdateConsumer(stream,
        ConsumerConfiguration.builder().durable("c").ackWait(Duration.ofSeconds(1)).build());
    JetStreamSubscription subscription = connection.jetStream().subscribe(null, PullSubscribeOptions.bind(stream, "c"));
    List<Message> messages = subscription.fetch(count, Duration.ofSeconds(5));
    subscription.unsubscribe();
    return messages;
  }

  @Test
  public void messagesWaitingLongerThanSeveralAckWaitsAreNotRedeliveredAndAreAckedAtTheEnd() throws Exception {
    try (Connection connection = SERVER.connect()) {
      JetStreamManagement jsm = connection.jetStreamManagement();
      List<Message> messages = pullUnacknowledged(connection, "waiting", 3);
      PendingAcks acks = new PendingAcks(NatsIO.ConnectionConfiguration.create(SERVER.url()), Duration.ofSeconds(1));
      try {
        PendingAcks.Batch batch = acks.open();
        for (Message message : messages) {
          batch.add(message.getReplyTo());
        }
        long before = PendingAcks.KEPT_ALIVE.get();
        // Six refreshes of three messages: about three ack waits, long enough for the server to redeliver.
        while (PendingAcks.KEPT_ALIVE.get() - before < 18) {
          Thread.sleep(50);
        }
        ConsumerInfo waiting = jsm.getConsumerInfo("waiting", "c");
        assertThat("deliveries, redeliveries included", waiting.getDelivered().getConsumerSequence(), equalTo(3L));
        assertThat(waiting.getRedelivered(), equalTo(0L));

        acks.ack(batch);
        assertThat(acks.pendingMessages(), equalTo(0));
        long deadline = System.currentTimeMillis() + 10_000;
        while (jsm.getStreamInfo("waiting").getStreamState().getMsgCount() > 0 && System.currentTimeMillis() < deadline) {
          Thread.sleep(50);
        }
        assertThat(jsm.getStreamInfo("waiting").getStreamState().getMsgCount(), equalTo(0L));
      } finally {
        acks.close();
      }
    }
  }

  @Test
  public void anAckThatCannotBeSentIsCountedAndNotThrown() {
    // Nothing listens on port 1: the connection fails, as when the server is gone at finalization.
    NatsIO.ConnectionConfiguration unreachable =
        NatsIO.ConnectionConfiguration.create("nats://127.0.0.1:1").withConnectTimeout(org.joda.time.Duration.millis(200)).withMaxReconnects(0);
    PendingAcks acks = new PendingAcks(unreachable, Duration.ofSeconds(30));
    try {
      PendingAcks.Batch batch = acks.open();
      batch.add("$JS.ACK.s.c.1.1.1.1.0");
      long before = PendingAcks.FAILED.get();

      acks.ack(batch);

      assertThat(PendingAcks.FAILED.get() - before, equalTo(1L));
    } finally {
      acks.close();
    }
  }

  @Test
  public void closingReturnsUncommittedMessagesForRedeliveryAtOnce() throws Exception {
    try (Connection connection = SERVER.connect()) {
      List<Message> messages = pullUnacknowledged(connection, "returned", 2);
      PendingAcks acks = new PendingAcks(NatsIO.ConnectionConfiguration.create(SERVER.url()), Duration.ofMinutes(5));
      PendingAcks.Batch batch = acks.open();
      for (Message message : messages) {
        batch.add(message.getReplyTo());
      }

      acks.close();

      JetStreamSubscription again = connection.jetStream().subscribe(null, PullSubscribeOptions.bind("returned", "c"));
      List<Message> redelivered = again.fetch(2, Duration.ofSeconds(5));
      assertThat(redelivered.size(), equalTo(2));
      assertThat(redelivered.get(0).metaData().deliveredCount(), equalTo(2L));
      again.unsubscribe();
    }
  }
}
