package dev.natsio.beam.testing;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.is;
import static org.junit.Assert.assertThrows;

import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.JetStreamManagement;
import io.nats.client.Nats;
import io.nats.client.Options;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.time.Duration;
import org.junit.Test;

/** The single-server harness: start, crash, restart with data kept, and each security setup. */
public class NatsTestServerTest {

  @Test
  public void startedServerAnswersJetStreamOnItsOwnPortAndStore() throws Exception {
    try (NatsTestServer server = NatsTestServer.jetStream().start();
        Connection connection = server.connect()) {
      assertThat(server.port() > 0, is(true));
      assertThat(server.url(), equalTo("nats://127.0.0.1:" + server.port()));
      assertThat(connection.getStatus(), equalTo(Connection.Status.CONNECTED));
      assertThat(connection.jetStreamManagement().getAccountStatistics().getStreams(), equalTo(0L));
      assertThat(Files.readString(server.logFile()), containsString(server.storeDir().toString()));
    }
  }

  @Test
  public void restartKeepsPortAndStreamMessages() throws Exception {
    try (NatsTestServer server = NatsTestServer.jetStream().start()) {
      int port = server.port();
      try (Connection connection = server.connect()) {
        createStream(connection.jetStreamManagement(), "kept", "kept.>");
        JetStream js = connection.jetStream();
        for (int i = 0; i < 50; i++) {
          js.publish("kept.a", ("m" + i).getBytes(StandardCharsets.UTF_8));
        }
      }
      server.restart();
      assertThat(server.port(), equalTo(port));
      try (Connection connection = server.connect()) {
        assertThat(connection.jetStreamManagement().getStreamInfo("kept").getStreamState().getMsgCount(), equalTo(50L));
      }
    }
  }

  @Test
  public void killedServerRestartsWithItsData() throws Exception {
    try (NatsTestServer server = NatsTestServer.jetStream().start()) {
      try (Connection connection = server.connect()) {
        createStream(connection.jetStreamManagement(), "crash", "crash.>");
        for (int i = 0; i < 20; i++) {
          connection.jetStream().publish("crash.x", new byte[] {(byte) i});
        }
      }
      server.kill();
      assertThat(server.isRunning(), is(false));
      server.restart();
      try (Connection connection = server.connect()) {
        assertThat(connection.jetStreamManagement().getStreamInfo("crash").getStreamState().getLastSequence(), equalTo(20L));
      }
    }
  }

  @Test
  public void userPasswordServerRefusesAnonymousAndAcceptsItsUser() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withUserPassword("alice", "s3cret").build().start()) {
      assertRefusesAnonymous(server);
      try (Connection connection = server.connect()) {
        assertThat(connection.getStatus(), equalTo(Connection.Status.CONNECTED));
      }
    }
  }

  @Test
  public void tokenServerRefusesAnonymousAndAcceptsItsToken() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withToken("t0ken").build().start()) {
      assertRefusesAnonymous(server);
      try (Connection connection = server.connect()) {
        assertThat(connection.getStatus(), equalTo(Connection.Status.CONNECTED));
      }
    }
  }

  @Test
  public void nkeyServerRefusesAnonymousAndAcceptsItsKey() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withNKey().build().start()) {
      assertRefusesAnonymous(server);
      assertThat(server.nkeySeed().startsWith("SU"), is(true));
      try (Connection connection = server.connect()) {
        assertThat(connection.getStatus(), equalTo(Connection.Status.CONNECTED));
      }
    }
  }

  @Test
  public void tlsServerAcceptsClientsTrustingTheTestCaOnly() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withTls().build().start()) {
      assertThat(server.url(), equalTo("tls://127.0.0.1:" + server.port()));
      try (Connection connection = server.connect()) {
        assertThat(connection.getStatus(), equalTo(Connection.Status.CONNECTED));
      }
      // The JVM's default trust store does not hold the test CA.
      Options untrusting =
          new Options.Builder().server(server.url()).secure().maxReconnects(0).connectionTimeout(Duration.ofSeconds(3)).build();
      assertThrows(Exception.class, () -> Nats.connect(untrusting).close());
    }
  }

  @Test
  public void aFixedPortTakenForAMomentIsTriedAgainUntilTheServerGetsIt() throws Exception {
    java.net.ServerSocket holder = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress());
    int port = holder.getLocalPort();
    Thread releaser = new Thread(() -> {
      NatsTestServer.sleep(Duration.ofMillis(300));
      try {
        holder.close();
      } catch (java.io.IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    });
    releaser.start();
    try (NatsTestServer server = NatsTestServer.builder().withPort(port).build()) {
      server.start();
      assertThat(server.isRunning(), is(true));
      assertThat(server.port(), equalTo(port));
    } finally {
      releaser.join();
    }
  }

  @Test
  public void aFixedPortThatStaysTakenFailsWithTheServersReason() throws Exception {
    try (java.net.ServerSocket holder = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress());
        NatsTestServer server = NatsTestServer.builder().withPort(holder.getLocalPort()).build()) {
      IllegalStateException error = assertThrows(IllegalStateException.class, server::start);
      assertThat(error.getMessage(), containsString("address already in use"));
      assertThat(server.isRunning(), is(false));
    }
  }

  @Test
  public void missingBinaryMessageSaysHowToInstall() {
    IllegalStateException error =
        assertThrows(IllegalStateException.class,             () -> NatsServerBinary.locate(null, "/nonexistent", java.nio.file.Paths.get("/nonexistent/nats-server")));
    assertThat(error.getMessage(), containsString("apt-get install nats-server"));
  }

  private static void assertRefusesAnonymous(NatsTestServer server) {
    Options anonymous =
        new Options.Builder().server(server.url()).maxReconnects(0).connectionTimeout(Duration.ofSeconds(3)).build();
    assertThrows(Exception.class, () -> Nats.connect(anonymous).close());
  }

  static void createStream(JetStreamManagement jsm, String name, String subject) throws Exception {
    jsm.addStream(StreamConfiguration.builder().name(name).subjects(subject).storageType(StorageType.File).build());
  }
}
