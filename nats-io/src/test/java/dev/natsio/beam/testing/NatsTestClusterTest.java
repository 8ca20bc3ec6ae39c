package dev.natsio.beam.testing;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.not;

import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.JetStreamManagement;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import io.nats.client.api.StreamInfo;
import java.time.Duration;
import org.junit.ClassRule;
import org.junit.Test;

/** The three-node harness: a meta leader is elected and an R3 stream survives its leader's kill. */
public class NatsTestClusterTest {
  @ClassRule public static final NatsTestCluster CLUSTER = NatsTestCluster.ofThree();

  @Test
  public void r3StreamKeepsServingAfterItsLeaderIsKilledAndKeepsDataWhenItReturns() throws Exception {
    try (Connection connection = CLUSTER.connect()) {
      JetStreamManagement jsm = connection.jetStreamManagement();
      jsm.addStream(
          StreamConfiguration.builder().name("replicated").subjects("rep.>").replicas(3).storageType(StorageType.File).build());
      JetStream js = connection.jetStream();
      for (int i = 0; i < 100; i++) {
        js.publish("rep.a", new byte[] {(byte) i});
      }
    }
    int leader = CLUSTER.streamLeader("replicated");
    CLUSTER.kill(leader);

    try (Connection connection = CLUSTER.connect()) {
      JetStream js = connection.jetStream();
      publishWithRetry(js, 100, Duration.ofSeconds(30));
      StreamInfo info = connection.jetStreamManagement().getStreamInfo("replicated");
      assertThat(info.getStreamState().getMsgCount(), equalTo(200L));
      assertThat(CLUSTER.streamLeader("replicated"), not(equalTo(leader)));
    }

    CLUSTER.restart(leader);
    try (Connection connection = CLUSTER.connect()) {
      assertThat(connection.jetStreamManagement().getStreamInfo("replicated").getStreamState().getLastSequence(), equalTo(200L));
    }
  }

  /** Publishes {@code count} messages, retrying each while the cluster elects a new stream leader. */
  private static void publishWithRetry(JetStream js, int count, Duration patience) throws Exception {
    long deadline = System.nanoTime() + patience.toNanos();
    for (int i = 0; i < count; i++) {
      while (true) {
        try {
          js.publish("rep.b", new byte[] {(byte) i});
          break;
        } catch (Exception e) {
          if (System.nanoTime() > deadline) {
            throw e;
          }
          Thread.sleep(200);
        }
      }
    }
  }
}
