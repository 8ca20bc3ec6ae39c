package dev.natsio.examples;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.NatsMessageCoder;
import io.nats.client.Connection;
import io.nats.client.Nats;
import io.nats.client.Options;
import io.nats.client.api.StreamConfiguration;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.Description;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;

/**
 * A connection with credentials and TLS: user and password, and the server's certificate checked
 * against a CA certificate file. The password comes from the environment ({@code NATS_PASSWORD}),
 * never from the command line, and NatsIO keeps it out of display data and logs.
 *
 * <pre>
 * scripts/example.sh SecureConnection     # starts a TLS server with a password on port 4443
 * </pre>
 *
 * <p>It writes {@value #MESSAGES} messages to JetStream over that connection, then reads them
 * back with another pipeline and prints the count.
 */
public final class SecureConnection {
  static final int MESSAGES = 5;

  private SecureConnection() {}

  /** The options of this example besides the server URL. */
  public interface SecureOptions extends ExampleOptions {
    /** The NATS user. */
    @Description("NATS user name; the password is read from the environment variable NATS_PASSWORD")
    String getNatsUser();

    /** Sets the NATS user. */
    void setNatsUser(String user);

    /** A PEM file of the CA certificate(s) the server's certificate must chain to. */
    @Description("PEM file of the CA certificate(s) the server's certificate must chain to")
    String getCaCertificateFile();

    /** Sets the CA certificate file. */
    void setCaCertificateFile(String path);
  }

  /** Writes and reads back messages over TLS with a password; {@code args} are Beam options. */
  public static void main(String[] args) throws Exception {
    SecureOptions options = PipelineOptionsFactory.fromArgs(args).withValidation().as(SecureOptions.class);
    String user = options.getNatsUser();
    String password = System.getenv("NATS_PASSWORD") != null ? System.getenv("NATS_PASSWORD") : System.getProperty("nats.password");
    if (password == null) {
      throw new IllegalArgumentException("Set the environment variable NATS_PASSWORD to the password of user " + options.getNatsUser());
    }
    NatsIO.ConnectionConfiguration connection = NatsIO.ConnectionConfiguration.create(options.getNatsUrl())
        .withUsernamePassword(options.getNatsUser(), password)
        .withCaCertificate(options.getCaCertificateFile());

    try (Connection setup = Nats.connect(new Options.Builder().server(options.getNatsUrl())
        .userInfo(options.getNatsUser(), password).sslContext(trusting(Path.of(options.getCaCertificateFile()))).build())) {
      Streams.recreate(setup, StreamConfiguration.builder().name("example_secure").subjects("example.secure").build());
    }

    List<NatsMessage> messages = new ArrayList<>();
    for (int i = 0; i < MESSAGES; i++) {
      messages.add(NatsMessage.create("example.secure", ("secret " + i).getBytes(StandardCharsets.UTF_8)));
    }
    Pipeline write = Pipeline.create(options);
    write.apply(Create.of(messages).withCoder(NatsMessageCoder.of()))
        .apply(NatsIO.write().withConnectionConfiguration(connection).withJetStream());
    write.run().waitUntilFinish();

    Pipeline read = Pipeline.create(options);
    read.apply(NatsIO.read().withConnectionConfiguration(connection).withStream("example_secure").withStopAtEndOfStream())
        .apply(Count.globally())
        .apply(ParDo.of(new DoFn<Long, Void>() {
          @ProcessElement
          public void process(@Element Long count) {
            System.out.printf("Read back %d messages over TLS as user '%s'%n", count, user);
          }
        }));
    read.run().waitUntilFinish();
  }

  /** An SSL context trusting the CA certificates in a PEM file (for the jnats set-up connection). */
  private static SSLContext trusting(Path caPem) throws Exception {
    KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
    trust.load(null, null);
    try (InputStream in = Files.newInputStream(caPem)) {
      int i = 0;
      for (Certificate ca : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
        trust.setCertificateEntry("ca" + i++, ca);
      }
    }
    TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    factory.init(trust);
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(null, factory.getTrustManagers(), null);
    return context;
  }
}
