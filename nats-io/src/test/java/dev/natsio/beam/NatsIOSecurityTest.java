package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.lessThan;
import static org.hamcrest.Matchers.not;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.NatsTestServer;
import dev.natsio.beam.testing.TestCertificates;
import io.nats.client.Connection;
import io.nats.client.NKey;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.beam.sdk.Pipeline.PipelineExecutionException;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Duration;
import org.junit.Rule;
import org.junit.Test;

/**
 * Connection security against real servers: each kind of authentication and TLS set up through
 * {@link NatsIO.ConnectionConfiguration} reads a small stream; wrong settings fail fast with an
 * error naming the server and the cause; no secret shows in toString, display data or errors.
 */
public class NatsIOSecurityTest {
  private static final int MESSAGES = 10;
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  /** Writes a stream of {@value #MESSAGES} messages through the harness's own (known good) client options. */
  private static void writeSmallStream(NatsTestServer server) throws Exception {
    try (Connection connection = server.connect()) {
      createStream(connection, "secure", "secure.>");
      publish(connection, "secure.x", MESSAGES);
    }
  }

  /** Reads the small stream to its end through NatsIO with {@code configuration}, and checks every message came. */
  private void assertReadsSmallStream(NatsIO.ConnectionConfiguration configuration) {
    PCollection<Long> sequences =
        pipeline
            .apply(NatsIO.read().withConnectionConfiguration(configuration).withStream("secure").withStopAtEndOfStream())
            .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence));
    PAssert.that(sequences).containsInAnyOrder(LongStream.rangeClosed(1, MESSAGES).boxed().collect(Collectors.toList()));
    pipeline.run().waitUntilFinish();
  }

  /** Connects directly (no pipeline) and returns the error, checking it came within the connect timeout. */
  private static NatsIOException connectFails(NatsIO.ConnectionConfiguration configuration) {
    long start = System.nanoTime();
    NatsIOException error = assertThrows(NatsIOException.class, () -> NatsConnections.connect(configuration).close());
    long millis = (System.nanoTime() - start) / 1_000_000;
    assertThat("failed within the connect timeout", millis, lessThan(configuration.getConnectTimeout().getMillis() + 1_500));
    return error;
  }

  private static NatsIO.ConnectionConfiguration config(NatsTestServer server) {
    return NatsIO.ConnectionConfiguration.create(server.url()).withConnectTimeout(Duration.standardSeconds(3));
  }

  /** Everything a user could see of an error: its message and its causes' messages. */
  private static String fullText(Throwable error) {
    StringBuilder text = new StringBuilder();
    for (Throwable t = error; t != null; t = t.getCause()) {
      text.append(t).append('\n');
    }
    return text.toString();
  }

  // ---- Reading with each kind of authentication and TLS ----------------------------------------

  @Test
  public void userPasswordServerIsReadWithUsernamePassword() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withUserPassword("reader", "s3cret-pw").build().start()) {
      writeSmallStream(server);
      assertReadsSmallStream(config(server).withUsernamePassword("reader", "s3cret-pw"));
    }
  }

  @Test
  public void tokenServerIsReadWithToken() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withToken("t0ken-value").build().start()) {
      writeSmallStream(server);
      assertReadsSmallStream(config(server).withToken("t0ken-value"));
    }
  }

  @Test
  public void nkeyServerIsReadWithNKeySeed() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withNKey().build().start()) {
      writeSmallStream(server);
      assertReadsSmallStream(config(server).withNKeySeed(server.nkeySeed()));
    }
  }

  @Test
  public void operatorModeServerIsReadWithCredentialsFile() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withOperatorMode().build().start()) {
      writeSmallStream(server);
      assertReadsSmallStream(config(server).withCredentialsFile(server.credentialsFile().toString()));
    }
  }

  @Test
  public void tlsServerIsReadTrustingItsCaPemFile() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withTls().build().start()) {
      writeSmallStream(server);
      assertReadsSmallStream(config(server).withCaCertificate(server.certificates().caPem().toString()));
    }
  }

  @Test
  public void tlsServerIsReadTrustingATrustStore() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withTls().build().start()) {
      writeSmallStream(server);
      assertReadsSmallStream(
          config(server).withTrustStore(server.certificates().trustStore().toString(), TestCertificates.STORE_PASSWORD, "PKCS12"));
    }
  }

  @Test
  public void serverVerifyingClientsIsReadWithAKeyStore() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withMutualTls().build().start()) {
      writeSmallStream(server);
      TestCertificates certs = server.certificates();
      assertReadsSmallStream(
          config(server)
              .withCaCertificate(certs.caPem().toString())
              .withKeyStore(certs.clientKeyStore().toString(), TestCertificates.STORE_PASSWORD, "PKCS12"));
    }
  }

  @Test
  public void serverVerifyingClientsIsReadWithPemCertificateAndKey() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withMutualTls().build().start()) {
      writeSmallStream(server);
      TestCertificates certs = server.certificates();
      assertReadsSmallStream(
          config(server)
              .withCaCertificate(certs.caPem().toString())
              .withClientCertificate(certs.clientCertificatePem().toString(), certs.clientKeyPem().toString()));
    }
  }

  @Test
  public void jetStreamDomainIsUsedForEveryJetStreamCall() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withJetStreamDomain("hub").build().start()) {
      writeSmallStream(server);
      assertReadsSmallStream(config(server).withJetStreamDomain("hub"));
    }
  }

  @Test
  public void jetStreamApiPrefixIsUsedForEveryJetStreamCall() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withJetStreamDomain("hub").build().start()) {
      writeSmallStream(server);
      // A domain is shorthand for this prefix; reaching the stream through it proves the prefix is threaded through.
      assertReadsSmallStream(config(server).withJetStreamApiPrefix("$JS.hub.API"));
    }
  }

  @Test
  public void wrongJetStreamDomainFailsNamingTheStreamAndServer() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withJetStreamDomain("hub").build().start()) {
      writeSmallStream(server);
      pipeline.apply(
          NatsIO.read().withConnectionConfiguration(config(server).withJetStreamDomain("elsewhere")).withStream("secure").withStopAtEndOfStream());
      PipelineExecutionException error = assertThrows(PipelineExecutionException.class, () -> pipeline.run().waitUntilFinish());
      assertThat(error.getCause().getMessage(), containsString("'secure'"));
      assertThat(error.getCause().getMessage(), containsString(server.url()));
    }
  }

  // ---- Failures: fast, clear, secret-free ------------------------------------------------------

  @Test
  public void wrongPasswordFailsTheReadWithAnAuthenticationErrorWithoutThePassword() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withUserPassword("reader", "s3cret-pw").build().start()) {
      writeSmallStream(server);
      pipeline.apply(
          NatsIO.read().withConnectionConfiguration(config(server).withUsernamePassword("reader", "wr0ng-pw"))
              .withStream("secure").withStopAtEndOfStream());
      PipelineExecutionException error = assertThrows(PipelineExecutionException.class, () -> pipeline.run().waitUntilFinish());
      String message = error.getCause().getMessage();
      assertThat(message, containsString(server.url()));
      assertThat(message, containsString("authentication failed"));
      assertThat(fullText(error), not(containsString("wr0ng-pw")));
    }
  }

  @Test
  public void wrongPasswordFailsToConnectWithinTheConnectTimeout() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withUserPassword("reader", "s3cret-pw").build().start()) {
      NatsIOException error = connectFails(config(server).withUsernamePassword("reader", "wr0ng-pw"));
      assertThat(error.getMessage(), containsString("authentication failed"));
      assertThat(fullText(error), not(containsString("wr0ng-pw")));
    }
  }

  @Test
  public void wrongTokenFailsWithAnAuthenticationErrorWithoutTheToken() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withToken("t0ken-value").build().start()) {
      NatsIOException error = connectFails(config(server).withToken("wr0ng-t0ken"));
      assertThat(error.getMessage(), containsString(server.url()));
      assertThat(error.getMessage(), containsString("authentication failed"));
      assertThat(fullText(error), not(containsString("wr0ng-t0ken")));
    }
  }

  @Test
  public void unknownNKeyFailsWithAnAuthenticationErrorWithoutTheSeed() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withNKey().build().start()) {
      String otherSeed = new String(NKey.createUser(new SecureRandom()).getSeed());
      NatsIOException error = connectFails(config(server).withNKeySeed(otherSeed));
      assertThat(error.getMessage(), containsString(server.url()));
      assertThat(error.getMessage(), containsString("authentication failed"));
      assertThat(fullText(error), not(containsString(otherSeed)));
    }
  }

  @Test
  public void credentialsOfAnotherOperatorFailWithAnAuthenticationErrorWithoutTheSeed() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withOperatorMode().build().start();
        NatsTestServer other = NatsTestServer.builder().withOperatorMode().build()) {
      // `other` is never started: only its freshly made credentials (signed by another operator) are used.
      NatsIOException error = connectFails(config(server).withCredentialsFile(other.credentialsFile().toString()));
      assertThat(error.getMessage(), containsString("authentication failed"));
      assertThat(fullText(error), not(containsString(other.credentialsSeed())));
    }
  }

  @Test
  public void untrustedServerCertificateFailsWithATlsError() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withTls().build().start()) {
      // No trust given: the JVM's default trust store does not hold the test CA.
      NatsIOException error = connectFails(config(server));
      assertThat(error.getMessage(), containsString(server.url()));
      assertThat(error.getMessage(), containsString("TLS handshake failed"));
    }
  }

  @Test
  public void serverCertificateNotNamingTheHostFailsHostnameVerification() throws Exception {
    Path dir = Files.createTempDirectory("natsio-othercerts-");
    TestCertificates elsewhere = TestCertificates.create(dir, "dns:elsewhere.invalid");
    try (NatsTestServer server = NatsTestServer.builder().withTls(elsewhere).build()) {
      server.start();
      NatsIOException error = connectFails(config(server).withCaCertificate(elsewhere.caPem().toString()));
      assertThat(error.getMessage(), containsString("TLS handshake failed"));
      // Turning host name checks off keeps the chain check, which this certificate passes.
      try (NatsConnections.Lease lease =
          NatsConnections.acquire(config(server).withCaCertificate(elsewhere.caPem().toString()).withoutTlsHostnameVerification())) {
        assertThat(lease.connection().getStatus(), org.hamcrest.Matchers.equalTo(Connection.Status.CONNECTED));
      }
    }
  }

  @Test
  public void serverRequiringClientCertificateRefusesAClientWithoutOne() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withMutualTls().build().start()) {
      NatsIOException error = connectFails(config(server).withCaCertificate(server.certificates().caPem().toString()));
      assertThat(error.getMessage(), containsString(server.url()));
      assertThat(error.getMessage(), containsString("Could not connect"));
    }
  }

  @Test
  public void wrongTrustStorePasswordFailsWithoutThePassword() throws Exception {
    try (NatsTestServer server = NatsTestServer.builder().withTls().build().start()) {
      NatsIOException error =
          connectFails(config(server).withTrustStore(server.certificates().trustStore().toString(), "wr0ng-store-pw"));
      assertThat(error.getMessage(), containsString(server.certificates().trustStore().toString()));
      assertThat(fullText(error), not(containsString("wr0ng-store-pw")));
    }
  }

  @Test
  public void unreachableServerFailsWithinTheConnectTimeout() throws Exception {
    int freePort;
    try (ServerSocket socket = new ServerSocket(0)) {
      freePort = socket.getLocalPort();
    }
    String url = "nats://127.0.0.1:" + freePort;
    NatsIOException error = connectFails(NatsIO.ConnectionConfiguration.create(url).withConnectTimeout(Duration.standardSeconds(2)));
    assertThat(error.getMessage(), containsString(url));
    assertThat(error.getMessage(), containsString("unreachable"));
  }

  // ---- Configuration ---------------------------------------------------------------------------

  @Test
  public void noSecretAppearsInToStringOrDisplayData() throws Exception {
    String seed = new String(NKey.createUser(new SecureRandom()).getSeed());
    NatsIO.ConnectionConfiguration base = NatsIO.ConnectionConfiguration.create("tls://127.0.0.1:4222");
    Map<String, NatsIO.ConnectionConfiguration> bySecret =
        Map.of(
            "pw-secret-1", base.withUsernamePassword("alice", "pw-secret-1"),
            "tok-secret-2", base.withToken("tok-secret-2"),
            seed, base.withNKeySeed(seed),
            "url-secret-3", NatsIO.ConnectionConfiguration.create("nats://bob:url-secret-3@127.0.0.1:4222"),
            "trust-secret-4", base.withTrustStore("/etc/trust.p12", "trust-secret-4"),
            "key-secret-5", base.withKeyStore("/etc/keys.p12", "key-secret-5"));
    for (Map.Entry<String, NatsIO.ConnectionConfiguration> entry : bySecret.entrySet()) {
      NatsIO.Read read = NatsIO.read().withConnectionConfiguration(entry.getValue()).withStream("s");
      String shown = entry.getValue().toString() + " " + DisplayData.from(read) + " " + read.toString();
      assertThat(shown, not(containsString(entry.getKey())));
      assertThat(shown, containsString("hidden"));
    }
  }

  @Test
  public void malformedNKeySeedIsRefusedWithoutQuotingIt() {
    IllegalArgumentException error =
        assertThrows(IllegalArgumentException.class, () -> NatsIO.ConnectionConfiguration.create("nats://h:4222").withNKeySeed("SUnot-a-seed-xyz"));
    assertThat(error.getMessage(), not(containsString("not-a-seed-xyz")));
  }

  @Test
  public void openTlsUrlIsRefusedBecauseItSkipsVerification() {
    IllegalArgumentException error =
        assertThrows(IllegalArgumentException.class, () -> NatsIO.ConnectionConfiguration.create("opentls://127.0.0.1:4222"));
    assertThat(error.getMessage(), containsString("withCaCertificate"));
  }

  @Test
  public void twoKindsOfAuthenticationAreRefusedAtConstruction() {
    NatsIO.Read read =
        NatsIO.read()
            .withConnectionConfiguration(NatsIO.ConnectionConfiguration.create("nats://h:4222").withToken("t").withCredentialsFile("/u.creds"))
            .withStream("s");
    IllegalArgumentException error = assertThrows(IllegalArgumentException.class, () -> org.apache.beam.sdk.Pipeline.create().apply(read));
    assertThat(error.getMessage(), containsString("token, credentials file"));
  }
}
