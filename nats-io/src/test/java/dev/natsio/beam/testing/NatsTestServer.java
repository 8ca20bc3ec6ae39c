package dev.natsio.beam.testing;

import io.nats.client.AuthHandler;
import io.nats.client.Connection;
import io.nats.client.JetStreamManagement;
import io.nats.client.NKey;
import io.nats.client.Nats;
import io.nats.client.Options;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.Comparator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.rules.ExternalResource;

/**
 * A real {@code nats-server} process with JetStream, for tests.
 *
 * <h3>Lifecycle</h3>
 *
 * <p>Use it as a JUnit rule ({@code @Rule} or {@code @ClassRule}) or in try-with-resources after
 * {@link #start()}. Each server binds to 127.0.0.1 on a port the server picks itself ({@code port:
 * -1} with {@code --ports_file_dir}), and keeps its JetStream data in a temporary directory of its
 * own: nats-server 2.9 would otherwise share {@code /tmp/nats/jetstream} between every server on
 * the machine. {@link #start()} returns once the server accepts connections and JetStream answers.
 *
 * <h3>Faults</h3>
 *
 * <p>{@link #stop()} shuts the server down gracefully, {@link #kill()} sends SIGKILL to simulate a
 * crash, and {@link #restart()} starts it again on the same port and store directory, so streams
 * written before survive. {@link #close()} stops the process and deletes the directory; a JVM
 * shutdown hook ({@link ManagedProcesses}) stops it if the test never gets that far.
 *
 * <h3>Security</h3>
 *
 * <p>The builder configures user/password, token or nkey authentication, operator (JWT) mode with
 * a credentials file ({@link TestJwtAccounts}), and TLS, optionally verifying client certificates,
 * with certificates made at test time ({@link TestCertificates}). {@link #clientOptions()} returns
 * jnats options that satisfy whatever the server requires.
 */
public final class NatsTestServer extends ExternalResource implements AutoCloseable {
  private static final Duration START_TIMEOUT = Duration.ofSeconds(30);
  /**
   * Starts tried when a fixed port (a cluster node's, chosen up front) is taken for a moment: a
   * connection to a port in the ephemeral range with nothing listening can connect to itself and
   * hold the port (seen in CI: a route to a node not yet started took that node's route port).
   */
  private static final int STARTS_WHILE_PORT_TAKEN = 5;
  private static final Pattern PORT_IN_PORTS_FILE = Pattern.compile("\"nats\"\\s*:\\s*\\[\\s*\"[a-z]+://[^\"]*:(\\d+)\"");
  private static final Pattern MONITORING_IN_PORTS_FILE = Pattern.compile("\"monitoring\"\\s*:\\s*\\[\\s*\"(http://[^\"]+)\"");

  private final Builder settings;
  private final Path workDir;
  private final Path storeDir;
  private final Path portsDir;
  private final Path configFile;
  private final Path logFile;
  private final TestJwtAccounts jwtAccounts;
  private int port;
  private String monitoringUrl;
  private Process process;
  /** Where this start's lines begin in the log, which every start appends to. */
  private long logStartOffset;
  private Connection sharedConnection;

  private NatsTestServer(Builder settings) {
    this.settings = settings;
    try {
      this.workDir = Files.createTempDirectory("natsio-server-");
    } catch (IOException e) {
      throw new UncheckedIOException("Could not create a temporary directory for nats-server", e);
    }
    this.storeDir = workDir.resolve("jetstream");
    this.portsDir = workDir.resolve("ports");
    this.configFile = workDir.resolve("nats-server.conf");
    this.logFile = workDir.resolve("nats-server.log");
    this.port = settings.port;
    this.jwtAccounts = settings.operatorMode ? TestJwtAccounts.create(workDir) : null;
  }

  /** A single JetStream server with no authentication. */
  public static NatsTestServer jetStream() {
    return builder().build();
  }

  public static Builder builder() {
    return new Builder();
  }

  /** Starts the server and waits until it accepts connections and JetStream answers. */
  public synchronized NatsTestServer start() {
    if (isRunning()) {
      return this;
    }
    for (int attempt = 1; ; attempt++) {
      try {
        return startOnce();
      } catch (PortTakenException e) {
        process = null;
        if (attempt == STARTS_WHILE_PORT_TAKEN) {
          throw e;
        }
        sleep(Duration.ofMillis(200L * attempt));
      }
    }
  }

  private NatsTestServer startOnce() {
    try {
      Files.createDirectories(storeDir);
      Files.createDirectories(portsDir);
      try (Stream<Path> old = Files.list(portsDir)) {
        for (Path file : (Iterable<Path>) old::iterator) {
          Files.delete(file);
        }
      }
      Files.writeString(configFile, renderConfig(), StandardCharsets.UTF_8);
      logStartOffset = Files.exists(logFile) ? Files.size(logFile) : 0;
      ProcessBuilder builder =
          new ProcessBuilder(
                  NatsServerBinary.locate().toString(),
                  "-c", configFile.toString(),
                  "--ports_file_dir", portsDir.toString())
              .redirectErrorStream(true)
              .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()));
      process = builder.start();
      ManagedProcesses.register(process);
    } catch (IOException e) {
      throw new UncheckedIOException("Could not start nats-server; see " + logFile, e);
    }
    String ports = awaitPortsFile();
    if (port <= 0) {
      Matcher matcher = PORT_IN_PORTS_FILE.matcher(ports);
      matcher.find();
      port = Integer.parseInt(matcher.group(1));
    }
    Matcher monitoring = MONITORING_IN_PORTS_FILE.matcher(ports);
    monitoringUrl = monitoring.find() ? monitoring.group(1) : null;
    awaitReady(settings.jetStream && settings.awaitJetStream);
    return this;
  }

  /** Stops the server gracefully; {@link #restart()} brings it back with its data. */
  public synchronized void stop() {
    if (process == null) {
      return;
    }
    ManagedProcesses.stop(process);
    process = null;
  }

  /** Kills the server with SIGKILL, as a crash would; {@link #restart()} brings it back. */
  public synchronized void kill() {
    if (process == null) {
      return;
    }
    ManagedProcesses.kill(process);
    process = null;
  }

  /** Starts the server again on the same port and store directory. */
  public synchronized NatsTestServer restart() {
    stop();
    return start();
  }

  public synchronized boolean isRunning() {
    return process != null && process.isAlive();
  }

  /** The client URL, without credentials. */
  public String url() {
    return (settings.certificates != null ? "tls" : "nats") + "://127.0.0.1:" + port;
  }

  public int port() {
    return port;
  }

  /** The running server's process id (benchmarks read its CPU time from /proc). */
  public synchronized long pid() {
    if (process == null) {
      throw new IllegalStateException("nats-server is not running");
    }
    return process.pid();
  }

  /**
   * How many messages the server delivered to each subscription on {@code subject} in {@code
   * queueGroup}, one entry per subscription, from its monitoring API.
   */
  public java.util.List<Long> queueSubscriberDeliveries(String subject, String queueGroup) {
    return new java.util.ArrayList<>(queueSubscriberDeliveriesById(subject, queueGroup).values());
  }

  /**
   * As {@link #queueSubscriberDeliveries}, keyed by "connection id/subscription id", which stays the
   * same between calls (the server lists subscriptions in no fixed order).
   */
  public java.util.Map<String, Long> queueSubscriberDeliveriesById(String subject, String queueGroup) {
    try {
      com.fasterxml.jackson.databind.JsonNode connz =
          new com.fasterxml.jackson.databind.ObjectMapper().readTree(monitoring("/connz?subs=detail&limit=1024"));
      java.util.Map<String, Long> deliveries = new java.util.TreeMap<>();
      for (com.fasterxml.jackson.databind.JsonNode connection : connz.path("connections")) {
        for (com.fasterxml.jackson.databind.JsonNode sub : connection.path("subscriptions_list_detail")) {
          if (subject.equals(sub.path("subject").asText()) && queueGroup.equals(sub.path("qgroup").asText())) {
            deliveries.put(connection.path("cid").asText() + "/" + sub.path("sid").asText(), sub.path("msgs").asLong());
          }
        }
      }
      return deliveries;
    } catch (IOException e) {
      throw new UncheckedIOException("Unreadable monitoring answer from " + url(), e);
    }
  }

  /**
   * Messages the server delivered to each inbox subscription ({@code _INBOX.*}) of the connections
   * named {@code connectionName}, smallest first, from its monitoring API: one entry per JetStream
   * puller (pull subscription) plus one for each connection's request inbox, which gets a few API
   * replies.
   */
  public java.util.List<Long> inboxDeliveries(String connectionName) {
    try {
      com.fasterxml.jackson.databind.JsonNode connz =
          new com.fasterxml.jackson.databind.ObjectMapper().readTree(monitoring("/connz?subs=detail&limit=1024"));
      java.util.List<Long> deliveries = new java.util.ArrayList<>();
      for (com.fasterxml.jackson.databind.JsonNode connection : connz.path("connections")) {
        if (connectionName.equals(connection.path("name").asText())) {
          for (com.fasterxml.jackson.databind.JsonNode sub : connection.path("subscriptions_list_detail")) {
            if (sub.path("subject").asText().startsWith("_INBOX.")) {
              deliveries.add(sub.path("msgs").asLong());
            }
          }
        }
      }
      deliveries.sort(null);
      return deliveries;
    } catch (IOException e) {
      throw new UncheckedIOException("Unreadable monitoring answer from " + url(), e);
    }
  }

  /**
   * A page of the server's HTTP monitoring API, e.g. {@code "/connz?subs=detail"}, as JSON text;
   * lets tests see what the server sees (connections, subscriptions and their message counts).
   */
  public String monitoring(String pathAndQuery) {
    try {
      java.net.http.HttpResponse<String> response =
          java.net.http.HttpClient.newHttpClient()
              .send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(monitoringUrl + pathAndQuery)).build(),
                  java.net.http.HttpResponse.BodyHandlers.ofString());
      return response.body();
    } catch (IOException e) {
      throw new UncheckedIOException("Could not read " + pathAndQuery + " from the monitoring port of " + url(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  public Path storeDir() {
    return storeDir;
  }

  public Path logFile() {
    return logFile;
  }

  /** Certificates the server presents, or null when TLS is off. */
  public TestCertificates certificates() {
    return settings.certificates;
  }

  /** The user name, password, token or nkey seed this server requires (null for none). */
  public String user() {
    return settings.user;
  }

  public String password() {
    return settings.password;
  }

  public String token() {
    return settings.token;
  }

  public String nkeySeed() {
    return settings.nkey == null ? null : new String(seedOf(settings.nkey));
  }

  /** The user credentials file of a server in operator mode, or null. */
  public Path credentialsFile() {
    return jwtAccounts == null ? null : jwtAccounts.credentialsFile();
  }

  /** The operator-mode user's seed (inside {@link #credentialsFile()}), or null. */
  public String credentialsSeed() {
    return jwtAccounts == null ? null : jwtAccounts.userSeed();
  }

  /** jnats options that connect to this server with whatever credentials and TLS it requires. */
  public Options.Builder clientOptions() {
    Options.Builder options =
        new Options.Builder()
            .server(url())
            .connectionTimeout(Duration.ofSeconds(5))
            .maxReconnects(-1)
            .reconnectWait(Duration.ofMillis(250));
    if (settings.user != null) {
      options.userInfo(settings.user, settings.password);
    }
    if (settings.token != null) {
      options.token(settings.token.toCharArray());
    }
    if (settings.nkey != null) {
      options.authHandler(nkeyAuthHandler(settings.nkey));
    }
    if (jwtAccounts != null) {
      options.authHandler(Nats.credentials(jwtAccounts.credentialsFile().toString()));
    }
    if (settings.certificates != null) {
      try {
        options.sslContext(settings.certificates.clientSslContext(settings.verifyClients));
      } catch (GeneralSecurityException | IOException e) {
        throw new IllegalStateException("Could not build a TLS context for the test server", e);
      }
    }
    return options;
  }

  /** A new connection to this server; the caller closes it. */
  public Connection connect() {
    try {
      return Nats.connect(clientOptions().build());
    } catch (IOException e) {
      throw new UncheckedIOException("Could not connect to nats-server at " + url(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /**
   * One connection for a test class's own set-up and checks (creating streams, publishing, reading
   * what a pipeline wrote), opened on first use and closed with the server. It reconnects by
   * itself across a {@link #stop()}/{@link #start()} of the same server.
   */
  public synchronized Connection sharedConnection() {
    if (sharedConnection == null || sharedConnection.getStatus() == Connection.Status.CLOSED) {
      sharedConnection = connect();
    }
    return sharedConnection;
  }

  /** Stops the server and deletes its store directory. */
  @Override
  public synchronized void close() {
    if (sharedConnection != null) {
      try {
        sharedConnection.close();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      sharedConnection = null;
    }
    stop();
    deleteRecursively(workDir);
  }

  @Override
  protected void before() {
    start();
  }

  @Override
  protected void after() {
    close();
  }

  String renderConfig() {
    StringBuilder config = new StringBuilder();
    config.append("host: 127.0.0.1\n");
    config.append("port: ").append(port <= 0 ? -1 : port).append('\n');
    config.append("http_port: -1\n");
    if (settings.serverName != null) {
      config.append("server_name: ").append(settings.serverName).append('\n');
    }
    if (settings.jetStream) {
      config.append("jetstream {\n  store_dir: \"").append(storeDir).append("\"\n");
      if (settings.jetStreamDomain != null) {
        config.append("  domain: ").append(settings.jetStreamDomain).append('\n');
      }
      config.append("}\n");
    }
    if (jwtAccounts != null) {
      config.append(jwtAccounts.serverConfig());
    }
    if (settings.user != null && !settings.restrictedUsers.isEmpty()) {
      config.append("authorization {\n  users: [\n    { user: \"").append(settings.user)
          .append("\", password: \"").append(settings.password).append("\" }\n");
      for (String[] restricted : settings.restrictedUsers) {
        config.append("    { user: \"").append(restricted[0]).append("\", password: \"").append(restricted[1])
            .append("\", permissions: { publish: { allow: \">\", deny: [");
        for (int i = 2; i < restricted.length; i++) {
          config.append(i > 2 ? ", " : "").append('"').append(restricted[i]).append('"');
        }
        config.append("] } } }\n");
      }
      config.append("  ]\n}\n");
    } else if (settings.user != null) {
      config.append("authorization {\n  user: \"").append(settings.user)
          .append("\"\n  password: \"").append(settings.password).append("\"\n}\n");
    } else if (settings.token != null) {
      config.append("authorization {\n  token: \"").append(settings.token).append("\"\n}\n");
    } else if (settings.nkey != null) {
      config.append("authorization {\n  users: [ { nkey: \"")
          .append(publicKeyOf(settings.nkey)).append("\" } ]\n}\n");
    }
    if (settings.certificates != null) {
      config.append("tls {\n  cert_file: \"").append(settings.certificates.serverCertificatePem())
          .append("\"\n  key_file: \"").append(settings.certificates.serverKeyPem())
          .append("\"\n  timeout: 5\n");
      if (settings.verifyClients) {
        config.append("  ca_file: \"").append(settings.certificates.caPem()).append("\"\n  verify: true\n");
      }
      config.append("}\n");
    }
    if (settings.maxPayload > 0) {
      config.append("max_payload: ").append(settings.maxPayload).append('\n');
    }
    if (settings.clusterBlock != null) {
      config.append(settings.clusterBlock);
    }
    return config.toString();
  }

  /** The server's ports file (client and monitoring URLs) once it has written both. */
  private String awaitPortsFile() {
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    while (System.nanoTime() < deadline) {
      failIfExited();
      try (Stream<Path> files = Files.list(portsDir)) {
        for (Path file : (Iterable<Path>) files::iterator) {
          String ports = Files.readString(file);
          if (PORT_IN_PORTS_FILE.matcher(ports).find() && MONITORING_IN_PORTS_FILE.matcher(ports).find()) {
            return ports;
          }
        }
      } catch (IOException e) {
        // The file is being written: read it again shortly.
      }
      sleep(Duration.ofMillis(20));
    }
    throw new IllegalStateException("nats-server did not report its ports within " + START_TIMEOUT + "; see " + logFile);
  }

  /** Polls until a client connects and, for JetStream, the account answers (meta leader known). */
  void awaitReady(boolean jetStream) {
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    Exception last = null;
    while (System.nanoTime() < deadline) {
      failIfExited();
      try (Connection connection = Nats.connect(clientOptions().maxReconnects(0).build())) {
        if (!jetStream) {
          return;
        }
        JetStreamManagement jsm = connection.jetStreamManagement();
        jsm.getAccountStatistics();
        return;
      } catch (Exception e) {
        last = e;
      }
      sleep(Duration.ofMillis(100));
    }
    throw new IllegalStateException(
        "nats-server at " + url() + " was not ready within " + START_TIMEOUT + "; see " + logFile, last);
  }

  private void failIfExited() {
    if (process != null && !process.isAlive()) {
      String log;
      try {
        byte[] bytes = Files.readAllBytes(logFile);
        int from = (int) Math.min(logStartOffset, bytes.length);
        log = new String(bytes, from, bytes.length - from, StandardCharsets.UTF_8);
      } catch (IOException e) {
        log = "(log unreadable: " + e + ")";
      }
      String failure = "nats-server exited with code " + process.exitValue() + " during start. Its log:\n" + log;
      if (log.contains("address already in use")) {
        throw new PortTakenException(failure);
      }
      throw new IllegalStateException(failure);
    }
  }

  /** A start that failed because a port it must listen on was taken: worth another try. */
  private static final class PortTakenException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    PortTakenException(String message) {
      super(message);
    }
  }

  static void sleep(Duration duration) {
    try {
      Thread.sleep(duration.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  static void deleteRecursively(Path dir) {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> walk = Files.walk(dir)) {
      walk.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
    } catch (IOException e) {
      // Best effort: a leftover temp directory is not worth failing a test for.
    }
  }

  private static char[] seedOf(NKey nkey) {
    return nkey.getSeed();
  }

  private static String publicKeyOf(NKey nkey) {
    try {
      return new String(nkey.getPublicKey());
    } catch (GeneralSecurityException | IOException e) {
      throw new IllegalStateException(e);
    }
  }

  private static AuthHandler nkeyAuthHandler(NKey nkey) {
    return new AuthHandler() {
      @Override
      public byte[] sign(byte[] nonce) {
        try {
          return nkey.sign(nonce);
        } catch (GeneralSecurityException | IOException e) {
          throw new IllegalStateException(e);
        }
      }

      @Override
      public char[] getID() {
        try {
          return nkey.getPublicKey();
        } catch (GeneralSecurityException | IOException e) {
          throw new IllegalStateException(e);
        }
      }

      @Override
      public char[] getJWT() {
        return null;
      }
    };
  }

  /** Options for a {@link NatsTestServer}. */
  public static final class Builder {
    private boolean jetStream = true;
    private boolean awaitJetStream = true;
    private int port = -1;
    private String serverName;
    private String user;
    private String password;
    private String token;
    private NKey nkey;
    private TestCertificates certificates;
    private boolean verifyClients;
    private String jetStreamDomain;
    private boolean operatorMode;
    private String clusterBlock;
    private int maxPayload;
    private final java.util.List<String[]> restrictedUsers = new java.util.ArrayList<>();

    private Builder() {}

    public Builder withoutJetStream() {
      this.jetStream = false;
      return this;
    }

    public Builder withUserPassword(String user, String password) {
      this.user = user;
      this.password = password;
      return this;
    }

    public Builder withToken(String token) {
      this.token = token;
      return this;
    }

    /**
     * Adds a second user, beside the one of {@link #withUserPassword} (which the harness itself
     * connects as and which may do anything), that may publish to every subject except {@code
     * deniedPublishSubjects}: for tests of a missing permission, e.g. {@code "$JS.API.STREAM.MSG.GET.>"}.
     */
    public Builder withRestrictedUser(String user, String password, String... deniedPublishSubjects) {
      if (this.user == null) {
        throw new IllegalStateException("withRestrictedUser needs withUserPassword first: the harness connects as that user");
      }
      String[] entry = new String[2 + deniedPublishSubjects.length];
      entry[0] = user;
      entry[1] = password;
      System.arraycopy(deniedPublishSubjects, 0, entry, 2, deniedPublishSubjects.length);
      restrictedUsers.add(entry);
      return this;
    }

    /** Requires nkey authentication with a freshly made user key. */
    public Builder withNKey() {
      try {
        this.nkey = NKey.createUser(null);
      } catch (GeneralSecurityException | IOException e) {
        throw new IllegalStateException("Could not create an nkey", e);
      }
      return this;
    }

    /** Serves TLS with certificates signed by a test CA made for this JVM. */
    public Builder withTls() {
      return withTls(TestCertificates.shared());
    }

    /** Serves TLS with these certificates. */
    public Builder withTls(TestCertificates certificates) {
      this.certificates = certificates;
      return this;
    }

    /** Serves TLS and requires clients to present a certificate signed by the test CA. */
    public Builder withMutualTls() {
      withTls();
      this.verifyClients = true;
      return this;
    }

    /** Places the server's JetStream in this domain. */
    public Builder withJetStreamDomain(String domain) {
      this.jetStreamDomain = domain;
      return this;
    }

    /** Runs in operator (JWT) mode: clients authenticate with {@link NatsTestServer#credentialsFile()}. */
    public Builder withOperatorMode() {
      this.operatorMode = true;
      return this;
    }

    /** The largest payload the server accepts, in bytes (the server's default is 1 MB). */
    public Builder withMaxPayload(int maxPayload) {
      this.maxPayload = maxPayload;
      return this;
    }

    Builder withPort(int port) {
      this.port = port;
      return this;
    }

    Builder withServerName(String serverName) {
      this.serverName = serverName;
      return this;
    }

    Builder withClusterBlock(String clusterBlock) {
      this.clusterBlock = clusterBlock;
      return this;
    }

    /** Cluster nodes cannot answer JetStream calls until a quorum is up: the cluster waits instead. */
    Builder withoutAwaitingJetStream() {
      this.awaitJetStream = false;
      return this;
    }

    public NatsTestServer build() {
      return new NatsTestServer(this);
    }
  }
}
