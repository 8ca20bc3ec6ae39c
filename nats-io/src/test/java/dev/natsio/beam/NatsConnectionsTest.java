package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.sameInstance;

import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import org.junit.ClassRule;
import org.junit.Test;

/** Connections shared per configuration: released with their last lease, however that lease ends. */
public class NatsConnectionsTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  /** A configuration no other test shares, so its connection is this test's alone. */
  private static NatsIO.ConnectionConfiguration ownConfiguration(String name) {
    return NatsIO.ConnectionConfiguration.create(SERVER.url()).withConnectionName("natsio-test-" + name);
  }

  @Test
  public void connectionIsClosedWithItsLastLease() {
    NatsIO.ConnectionConfiguration configuration = ownConfiguration("last-lease");
    NatsConnections.Lease first = NatsConnections.acquire(configuration);
    NatsConnections.Lease second = NatsConnections.acquire(configuration);
    Connection shared = first.connection();
    assertThat(second.connection(), sameInstance(shared));

    first.close();
    assertThat(shared.getStatus(), equalTo(Connection.Status.CONNECTED));
    second.close();
    assertThat(shared.getStatus(), equalTo(Connection.Status.CLOSED));
  }

  @Test
  public void leaseOfAHolderCollectedWithoutTeardownIsReleased() throws Exception {
    NatsIO.ConnectionConfiguration configuration = ownConfiguration("abandoned-by-its-holder");
    Object holder = new Object();
    Connection connection = NatsConnections.acquireFor(holder, configuration).connection();
    assertThat(connection.getStatus(), equalTo(Connection.Status.CONNECTED));

    holder = null; // Like a DoFn instance a runner drops without calling its teardown.
    long deadline = System.currentTimeMillis() + 20_000;
    while (connection.getStatus() != Connection.Status.CLOSED && System.currentTimeMillis() < deadline) {
      System.gc();
      Thread.sleep(50);
    }

    assertThat(connection.getStatus(), equalTo(Connection.Status.CLOSED));
  }

  @Test
  public void aConnectionBeingMadeDoesNotHoldUpLeasesOfOtherConfigurations() throws Exception {
    // A server that accepts TCP but never speaks NATS: connecting to it lasts the connect timeout.
    try (java.net.ServerSocket silent = new java.net.ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress())) {
      NatsIO.ConnectionConfiguration stuck = NatsIO.ConnectionConfiguration.create("nats://127.0.0.1:" + silent.getLocalPort())
          .withConnectTimeout(org.joda.time.Duration.standardSeconds(30)).withMaxReconnects(0);
      java.util.concurrent.CountDownLatch connecting = new java.util.concurrent.CountDownLatch(1);
      Thread slow = new Thread(() -> {
        connecting.countDown();
        try {
          NatsConnections.acquire(stuck).close();
        } catch (NatsIOException expected) {
          // The silent server never completes the handshake.
        }
      });
      slow.setDaemon(true);
      slow.start();
      connecting.await();
      try (java.net.Socket accepted = silent.accept()) { // The slow connect is under way.
        try (NatsConnections.Lease other = NatsConnections.acquire(ownConfiguration("while-another-connects"))) {
          assertThat(other.connection().getStatus(), equalTo(Connection.Status.CONNECTED));
          assertThat("the other configuration's connect is still under way", slow.isAlive(), equalTo(true));
        }
      }
    }
  }
}
