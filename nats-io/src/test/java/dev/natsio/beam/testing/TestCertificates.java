package dev.natsio.beam.testing;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.GeneralSecurityException;
import java.security.Key;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * A throwaway certificate authority and a server certificate for 127.0.0.1 and localhost, made
 * at test time with the JDK's {@code keytool} so no key material is ever checked in.
 *
 * <p>Files: {@link #caPem()} (the CA certificate), {@link #serverCertificatePem()} and {@link
 * #serverKeyPem()} (PKCS#8, as nats-server reads it), and {@link #trustStore()} (PKCS12 holding the
 * CA, password {@link #STORE_PASSWORD}) for Java clients. One set is made per JVM, lazily, because
 * each keytool call costs a JVM start.
 *
 * <p>A client certificate signed by the same CA, for servers that verify clients, is made on first
 * use of {@link #clientKeyStore()}, {@link #clientCertificatePem()} or {@link #clientKeyPem()}.
 * {@link #create(Path, String)} makes a set whose server certificate names other hosts, to test
 * host name verification.
 */
public final class TestCertificates {
  public static final String STORE_PASSWORD = "natsio-test";
  private static TestCertificates shared;

  private final Path dir;

  private TestCertificates(Path dir) {
    this.dir = dir;
  }

  /** The certificates of this JVM, made on first use. */
  public static synchronized TestCertificates shared() {
    if (shared == null) {
      try {
        Path dir = Files.createTempDirectory("natsio-certs-");
        dir.toFile().deleteOnExit();
        shared = create(dir);
      } catch (IOException | GeneralSecurityException e) {
        throw new IllegalStateException("Could not create test certificates with keytool", e);
      }
    }
    return shared;
  }

  /** Makes a CA, a server key pair signed by it, and a client trust store, in {@code dir}. */
  public static TestCertificates create(Path dir) throws IOException, GeneralSecurityException {
    return create(dir, "ip:127.0.0.1,dns:localhost");
  }

  /** As {@link #create(Path)}, with the server certificate naming {@code subjectAlternativeNames} (keytool syntax). */
  public static TestCertificates create(Path dir, String subjectAlternativeNames) throws IOException, GeneralSecurityException {
    TestCertificates certs = new TestCertificates(dir);
    String ca = dir.resolve("ca.p12").toString();
    String server = dir.resolve("server.p12").toString();
    keytool("-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048",
        "-dname", "CN=NatsIO Test CA", "-ext", "bc:c", "-validity", "3",
        "-storetype", "PKCS12", "-keystore", ca, "-storepass", STORE_PASSWORD);
    keytool("-exportcert", "-rfc", "-alias", "ca", "-keystore", ca, "-storepass", STORE_PASSWORD,
        "-file", certs.caPem().toString());
    keytool("-genkeypair", "-alias", "server", "-keyalg", "RSA", "-keysize", "2048",
        "-dname", "CN=localhost", "-validity", "3",
        "-storetype", "PKCS12", "-keystore", server, "-storepass", STORE_PASSWORD);
    keytool("-certreq", "-alias", "server", "-keystore", server, "-storepass", STORE_PASSWORD,
        "-file", dir.resolve("server.csr").toString());
    keytool("-gencert", "-rfc", "-alias", "ca", "-keystore", ca, "-storepass", STORE_PASSWORD,
        "-infile", dir.resolve("server.csr").toString(),
        "-outfile", certs.serverCertificatePem().toString(),
        "-ext", "san=" + subjectAlternativeNames, "-ext", "eku=serverAuth", "-validity", "3");

    KeyStore serverStore = KeyStore.getInstance("PKCS12");
    try (InputStream in = Files.newInputStream(Paths.get(server))) {
      serverStore.load(in, STORE_PASSWORD.toCharArray());
    }
    Key key = serverStore.getKey("server", STORE_PASSWORD.toCharArray());
    Files.writeString(certs.serverKeyPem(), pem("PRIVATE KEY", key.getEncoded()), StandardCharsets.US_ASCII);

    KeyStore trust = KeyStore.getInstance("PKCS12");
    trust.load(null, null);
    trust.setCertificateEntry("natsio-test-ca", certs.caCertificate());
    try (var out = Files.newOutputStream(certs.trustStore())) {
      trust.store(out, STORE_PASSWORD.toCharArray());
    }
    return certs;
  }

  public Path caPem() {
    return dir.resolve("ca.pem");
  }

  public Path serverCertificatePem() {
    return dir.resolve("server-cert.pem");
  }

  public Path serverKeyPem() {
    return dir.resolve("server-key.pem");
  }

  public Path trustStore() {
    return dir.resolve("truststore.p12");
  }

  /** PKCS12 store (password {@link #STORE_PASSWORD}) with a client key and certificate signed by the CA. */
  public synchronized Path clientKeyStore() throws IOException, GeneralSecurityException {
    Path store = dir.resolve("client.p12");
    if (!Files.exists(store)) {
      String ca = dir.resolve("ca.p12").toString();
      keytool("-genkeypair", "-alias", "client", "-keyalg", "RSA", "-keysize", "2048",
          "-dname", "CN=natsio-client", "-validity", "3",
          "-storetype", "PKCS12", "-keystore", store.toString(), "-storepass", STORE_PASSWORD);
      keytool("-certreq", "-alias", "client", "-keystore", store.toString(), "-storepass", STORE_PASSWORD,
          "-file", dir.resolve("client.csr").toString());
      keytool("-gencert", "-rfc", "-alias", "ca", "-keystore", ca, "-storepass", STORE_PASSWORD,
          "-infile", dir.resolve("client.csr").toString(), "-outfile", dir.resolve("client-cert.pem").toString(),
          "-ext", "eku=clientAuth", "-validity", "3");
      // Replace the self-signed entry with the CA-signed chain, as a client presents it.
      KeyStore keys = KeyStore.getInstance("PKCS12");
      try (InputStream in = Files.newInputStream(store)) {
        keys.load(in, STORE_PASSWORD.toCharArray());
      }
      Key key = keys.getKey("client", STORE_PASSWORD.toCharArray());
      Certificate signed;
      try (InputStream in = Files.newInputStream(dir.resolve("client-cert.pem"))) {
        signed = CertificateFactory.getInstance("X.509").generateCertificate(in);
      }
      keys.setKeyEntry("client", key, STORE_PASSWORD.toCharArray(), new Certificate[] {signed, caCertificate()});
      try (var out = Files.newOutputStream(store)) {
        keys.store(out, STORE_PASSWORD.toCharArray());
      }
      Files.writeString(dir.resolve("client-key.pem"), pem("PRIVATE KEY", key.getEncoded()), StandardCharsets.US_ASCII);
    }
    return store;
  }

  /** The CA-signed client certificate as PEM. */
  public Path clientCertificatePem() throws IOException, GeneralSecurityException {
    clientKeyStore();
    return dir.resolve("client-cert.pem");
  }

  /** The client's private key as unencrypted PKCS#8 PEM. */
  public Path clientKeyPem() throws IOException, GeneralSecurityException {
    clientKeyStore();
    return dir.resolve("client-key.pem");
  }

  public Certificate caCertificate() throws IOException, GeneralSecurityException {
    try (InputStream in = Files.newInputStream(caPem())) {
      return CertificateFactory.getInstance("X.509").generateCertificate(in);
    }
  }

  /** An SSL context that trusts only the test CA. */
  public SSLContext clientSslContext() throws IOException, GeneralSecurityException {
    return clientSslContext(false);
  }

  /** An SSL context that trusts only the test CA and, when {@code withClientCertificate}, presents the client certificate. */
  public SSLContext clientSslContext(boolean withClientCertificate) throws IOException, GeneralSecurityException {
    KeyStore trust = KeyStore.getInstance("PKCS12");
    try (InputStream in = Files.newInputStream(trustStore())) {
      trust.load(in, STORE_PASSWORD.toCharArray());
    }
    TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    factory.init(trust);
    KeyManager[] keyManagers = null;
    if (withClientCertificate) {
      KeyStore keys = KeyStore.getInstance("PKCS12");
      try (InputStream in = Files.newInputStream(clientKeyStore())) {
        keys.load(in, STORE_PASSWORD.toCharArray());
      }
      KeyManagerFactory keyFactory = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
      keyFactory.init(keys, STORE_PASSWORD.toCharArray());
      keyManagers = keyFactory.getKeyManagers();
    }
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(keyManagers, factory.getTrustManagers(), null);
    return context;
  }

  private static String pem(String type, byte[] der) {
    String body = Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der);
    return "-----BEGIN " + type + "-----\n" + body + "\n-----END " + type + "-----\n";
  }

  private static void keytool(String... args) throws IOException {
    List<String> command = new ArrayList<>();
    command.add(Paths.get(System.getProperty("java.home"), "bin", "keytool").toString());
    command.add("-noprompt");
    command.addAll(List.of(args));
    Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
    String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    try {
      if (!process.waitFor(60, TimeUnit.SECONDS) || process.exitValue() != 0) {
        throw new IOException("keytool " + String.join(" ", args) + " failed: " + output);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException(e);
    }
  }
}
