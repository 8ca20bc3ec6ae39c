package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import dev.natsio.beam.testing.NatsTestServer;
import org.junit.ClassRule;
import org.junit.Test;

/** Connections shared per configuration: released with their last lease, however that lease ends. */
public class NatsConnectionsTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  /** A configuration no other test shares, so the count of open connections is this test's. */
  private static NatsIO.ConnectionConfiguration ownConfiguration(String name) {
    return NatsIO.ConnectionConfiguration.create(SERVER.url()).withConnectionName("natsio-test-" + name);
  }

  @Test
  public void connectionIsClosedWithItsLastLease() {
    NatsIO.ConnectionConfiguration configuration = ownConfiguration("last-lease");
    int before = NatsConnections.openConnections();
    NatsConnections.Lease first = NatsConnections.acquire(configuration);
    NatsConnections.Lease second = NatsConnections.acquire(configuration);
    assertThat(second.connection(), equalTo(first.connection()));
    assertThat(NatsConnections.openConnections(), equalTo(before + 1));

    first.close();
    assertThat(NatsConnections.openConnections(), equalTo(before + 1));
    second.close();
    assertThat(NatsConnections.openConnections(), equalTo(before));
  }

  @Test
  public void leaseOfAHolderCollectedWithoutTeardownIsReleased() throws Exception {
    NatsIO.ConnectionConfiguration configuration = ownConfiguration("abandoned-by-its-holder");
    int before = NatsConnections.openConnections();
    Object holder = new Object();
    NatsConnections.acquireFor(holder, configuration);
    assertThat(NatsConnections.openConnections(), equalTo(before + 1));

    holder = null; // Like a DoFn instance a runner drops without calling its teardown.
    long deadline = System.currentTimeMillis() + 20_000;
    while (NatsConnections.openConnections() > before && System.currentTimeMillis() < deadline) {
      System.gc();
      Thread.sleep(50);
    }

    assertThat(NatsConnections.openConnections(), equalTo(before));
  }
}
