package dev.natsio.beam;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyManagementException;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.InvalidKeySpecException;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLContextSpi;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLServerSocketFactory;
import javax.net.ssl.SSLSessionContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * Builds the {@link SSLContext} a {@link NatsIO.ConnectionConfiguration} asks for, on the worker
 * that connects (an {@code SSLContext} is not serializable; paths and passwords are).
 *
 * <h3>Trust and identity</h3>
 *
 * <p>Trust comes from a trust store (JKS or PKCS#12) or a PEM file of CA certificates; with
 * neither, the JVM's default trust store. A client identity (for servers that verify clients) comes
 * from a key store or a PEM certificate chain plus a PEM private key (PKCS#8, or PKCS#1 RSA).
 *
 * <h3>Server verification</h3>
 *
 * <p>The server's certificate chain is always checked against the trust: NatsIO has no
 * trust-everything mode. jnats checks only the chain, not that the certificate names the host it
 * connected to, so by default every socket this context makes also verifies the host name
 * (endpoint identification "HTTPS": a DNS or IP subject alternative name must match the host in
 * the URL). {@code withoutTlsHostnameVerification()} turns only that second check off, for
 * clusters that advertise addresses their certificates do not name.
 */
final class NatsTls {
  private static final Pattern PEM_BLOCK =
      Pattern.compile("-----BEGIN ([A-Z0-9 ]+)-----([^-]+)-----END \\1-----");
  /** DER prefix of a PKCS#8 PrivateKeyInfo wrapping an RSA key (version 0, rsaEncryption OID, NULL). */
  private static final byte[] PKCS8_RSA_ALGORITHM = {
    0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, (byte) 0x86, 0x48, (byte) 0x86, (byte) 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00
  };

  private NatsTls() {}

  /** The context for {@code configuration}, or null when it asks for no TLS at all. */
  static @Nullable SSLContext sslContext(NatsIO.ConnectionConfiguration configuration, boolean tlsUrl)
      throws GeneralSecurityException, IOException {
    if (!configuration.hasTlsMaterial() && !tlsUrl) {
      return null;
    }
    SSLContext context;
    if (!configuration.hasTlsMaterial()) {
      context = SSLContext.getDefault();
    } else {
      context = SSLContext.getInstance("TLS");
      context.init(keyManagers(configuration), trustManagers(configuration), new SecureRandom());
    }
    return configuration.getTlsHostnameVerification() ? new HostnameVerifyingContext(context) : context;
  }

  private static TrustManager @Nullable [] trustManagers(NatsIO.ConnectionConfiguration configuration)
      throws GeneralSecurityException, IOException {
    KeyStore trust = null;
    if (configuration.getTrustStorePath() != null) {
      trust = loadStore("trust store", configuration.getTrustStorePath(), configuration.getTrustStoreType(), configuration.getTrustStorePassword());
    } else if (configuration.getCaCertificateFile() != null) {
      trust = KeyStore.getInstance(KeyStore.getDefaultType());
      trust.load(null, null);
      int i = 0;
      for (Certificate certificate : readCertificates("CA certificate", configuration.getCaCertificateFile())) {
        trust.setCertificateEntry("ca-" + i++, certificate);
      }
    }
    if (trust == null) {
      return null; // The JVM's default trust.
    }
    TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    factory.init(trust);
    return factory.getTrustManagers();
  }

  private static KeyManager @Nullable [] keyManagers(NatsIO.ConnectionConfiguration configuration)
      throws GeneralSecurityException, IOException {
    KeyStore keys;
    char[] password;
    if (configuration.getKeyStorePath() != null) {
      password = chars(configuration.getKeyStorePassword());
      keys = loadStore("key store", configuration.getKeyStorePath(), configuration.getKeyStoreType(), configuration.getKeyStorePassword());
    } else if (configuration.getClientCertificateFile() != null) {
      password = new char[0];
      List<Certificate> chain = readCertificates("client certificate", configuration.getClientCertificateFile());
      PrivateKey key = readPrivateKey(configuration.getClientKeyFile());
      keys = KeyStore.getInstance(KeyStore.getDefaultType());
      keys.load(null, null);
      keys.setKeyEntry("client", key, password, chain.toArray(new Certificate[0]));
    } else {
      return null;
    }
    KeyManagerFactory factory = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    factory.init(keys, password);
    return factory.getKeyManagers();
  }

  private static KeyStore loadStore(String what, String path, @Nullable String type, @Nullable String password)
      throws GeneralSecurityException, IOException {
    KeyStore store = KeyStore.getInstance(type == null ? KeyStore.getDefaultType() : type);
    try (InputStream in = Files.newInputStream(Paths.get(path))) {
      store.load(in, chars(password));
    } catch (IOException e) {
      // The JDK reports a wrong password as an IOException; its message never holds the password.
      throw new IOException("cannot load the TLS " + what + " " + path + ": " + e.getMessage(), e);
    }
    return store;
  }

  private static List<Certificate> readCertificates(String what, String path) throws GeneralSecurityException, IOException {
    Collection<? extends Certificate> certificates;
    try (InputStream in = Files.newInputStream(Paths.get(path))) {
      certificates = CertificateFactory.getInstance("X.509").generateCertificates(in);
    } catch (IOException e) {
      throw new IOException("cannot read the " + what + " file " + path + ": " + e, e);
    }
    if (certificates.isEmpty()) {
      throw new GeneralSecurityException("the " + what + " file " + path + " holds no PEM certificate");
    }
    return new ArrayList<>(certificates);
  }

  /** Reads an unencrypted PEM private key: PKCS#8 ("PRIVATE KEY", RSA or EC) or PKCS#1 ("RSA PRIVATE KEY"). */
  static PrivateKey readPrivateKey(String path) throws GeneralSecurityException, IOException {
    String pem;
    try {
      pem = Files.readString(Path.of(path), StandardCharsets.US_ASCII);
    } catch (IOException e) {
      throw new IOException("cannot read the client key file " + path + ": " + e, e);
    }
    Matcher matcher = PEM_BLOCK.matcher(pem);
    while (matcher.find()) {
      String type = matcher.group(1);
      byte[] der = Base64.getMimeDecoder().decode(matcher.group(2));
      if (type.equals("PRIVATE KEY")) {
        return pkcs8(der, path);
      }
      if (type.equals("RSA PRIVATE KEY")) {
        return KeyFactory.getInstance("RSA").generatePrivate(new PKCS8EncodedKeySpec(wrapPkcs1Rsa(der)));
      }
      if (type.equals("ENCRYPTED PRIVATE KEY") || type.equals("EC PRIVATE KEY")) {
        throw new GeneralSecurityException(
            "the client key file " + path + " holds an " + type + ", which NatsIO does not read: convert it to an "
                + "unencrypted PKCS#8 key ('openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-pkcs8.pem'), or use withKeyStore(...)");
      }
    }
    throw new GeneralSecurityException("the client key file " + path + " holds no PEM private key");
  }

  private static PrivateKey pkcs8(byte[] der, String path) throws GeneralSecurityException {
    for (String algorithm : new String[] {"RSA", "EC", "Ed25519"}) {
      try {
        return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(der));
      } catch (InvalidKeySpecException e) {
        // Not this algorithm: try the next.
      }
    }
    throw new GeneralSecurityException("the client key file " + path + " holds a PKCS#8 key that is not RSA, EC or Ed25519");
  }

  /** Wraps a PKCS#1 RSAPrivateKey in a PKCS#8 PrivateKeyInfo, which the JDK's KeyFactory reads. */
  private static byte[] wrapPkcs1Rsa(byte[] pkcs1) {
    byte[] octetString = concat(new byte[] {0x04}, derLength(pkcs1.length), pkcs1);
    byte[] body = concat(PKCS8_RSA_ALGORITHM, octetString);
    return concat(new byte[] {0x30}, derLength(body.length), body);
  }

  private static byte[] derLength(int length) {
    if (length < 0x80) {
      return new byte[] {(byte) length};
    }
    int bytes = length > 0xffffff ? 4 : length > 0xffff ? 3 : length > 0xff ? 2 : 1;
    byte[] out = new byte[bytes + 1];
    out[0] = (byte) (0x80 | bytes);
    for (int i = bytes; i > 0; i--) {
      out[i] = (byte) length;
      length >>>= 8;
    }
    return out;
  }

  private static byte[] concat(byte[]... parts) {
    int length = 0;
    for (byte[] part : parts) {
      length += part.length;
    }
    byte[] out = new byte[length];
    int at = 0;
    for (byte[] part : parts) {
      System.arraycopy(part, 0, out, at, part.length);
      at += part.length;
    }
    return out;
  }

  private static char @Nullable [] chars(@Nullable String password) {
    return password == null ? null : password.toCharArray();
  }

  // ---- Host name verification ------------------------------------------------------------------

  /** An SSLContext whose client sockets and engines verify the server's host name. */
  private static final class HostnameVerifyingContext extends SSLContext {
    HostnameVerifyingContext(SSLContext delegate) {
      super(new Spi(delegate), delegate.getProvider(), delegate.getProtocol());
    }
  }

  private static final class Spi extends SSLContextSpi {
    private final SSLContext delegate;

    Spi(SSLContext delegate) {
      this.delegate = delegate;
    }

    @Override
    protected void engineInit(KeyManager[] km, TrustManager[] tm, SecureRandom sr) throws KeyManagementException {
      delegate.init(km, tm, sr);
    }

    @Override
    protected SSLSocketFactory engineGetSocketFactory() {
      return new VerifyingSocketFactory(delegate.getSocketFactory());
    }

    @Override
    protected SSLServerSocketFactory engineGetServerSocketFactory() {
      return delegate.getServerSocketFactory();
    }

    @Override
    protected SSLEngine engineCreateSSLEngine() {
      return delegate.createSSLEngine();
    }

    @Override
    protected SSLEngine engineCreateSSLEngine(String host, int port) {
      SSLEngine engine = delegate.createSSLEngine(host, port);
      SSLParameters parameters = engine.getSSLParameters();
      parameters.setEndpointIdentificationAlgorithm("HTTPS");
      engine.setSSLParameters(parameters);
      return engine;
    }

    @Override
    protected SSLSessionContext engineGetServerSessionContext() {
      return delegate.getServerSessionContext();
    }

    @Override
    protected SSLSessionContext engineGetClientSessionContext() {
      return delegate.getClientSessionContext();
    }
  }

  /** Sets endpoint identification on every socket, so the handshake fails on a host name mismatch. */
  private static final class VerifyingSocketFactory extends SSLSocketFactory {
    private final SSLSocketFactory delegate;

    VerifyingSocketFactory(SSLSocketFactory delegate) {
      this.delegate = delegate;
    }

    private static Socket verifying(Socket socket) {
      if (socket instanceof SSLSocket) {
        SSLSocket ssl = (SSLSocket) socket;
        SSLParameters parameters = ssl.getSSLParameters();
        parameters.setEndpointIdentificationAlgorithm("HTTPS");
        ssl.setSSLParameters(parameters);
      }
      return socket;
    }

    @Override
    public String[] getDefaultCipherSuites() {
      return delegate.getDefaultCipherSuites();
    }

    @Override
    public String[] getSupportedCipherSuites() {
      return delegate.getSupportedCipherSuites();
    }

    @Override
    public Socket createSocket(Socket socket, String host, int port, boolean autoClose) throws IOException {
      return verifying(delegate.createSocket(socket, host, port, autoClose));
    }

    @Override
    public Socket createSocket() throws IOException {
      return verifying(delegate.createSocket());
    }

    @Override
    public Socket createSocket(String host, int port) throws IOException {
      return verifying(delegate.createSocket(host, port));
    }

    @Override
    public Socket createSocket(String host, int port, InetAddress localHost, int localPort) throws IOException {
      return verifying(delegate.createSocket(host, port, localHost, localPort));
    }

    @Override
    public Socket createSocket(InetAddress host, int port) throws IOException {
      return verifying(delegate.createSocket(host, port));
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort) throws IOException {
      return verifying(delegate.createSocket(address, port, localAddress, localPort));
    }
  }
}
