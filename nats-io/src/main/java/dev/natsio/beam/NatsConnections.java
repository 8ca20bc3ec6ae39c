package dev.natsio.beam;

import io.nats.client.AuthenticationException;
import io.nats.client.Connection;
import io.nats.client.Consumer;
import io.nats.client.ErrorListener;
import io.nats.client.JetStreamSubscription;
import io.nats.client.Message;
import io.nats.client.Nats;
import io.nats.client.support.Status;
import java.io.IOException;
import java.security.GeneralSecurityException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import javax.net.ssl.SSLException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Per-JVM shared NATS connections, one per {@link NatsIO.ConnectionConfiguration}.
 *
 * <p>A jnats connection multiplexes any number of consumers and publishers, and opening one costs
 * a TCP and often a TLS handshake, so every DoFn instance, reader and writer in a worker JVM that
 * uses the same configuration shares one. Users take a {@link Lease} and close it when done; the
 * connection is closed when its last lease is. That bounds connections per JVM by the number of
 * distinct configurations, whatever the parallelism.
 *
 * <p>The JVM-wide lock guards only the table of connections: connecting (handshakes, up to the
 * connect timeout) happens outside it, so one slow or unreachable server does not hold up leases
 * of other configurations, or releases.
 */
final class NatsConnections {
  private static final Logger LOG = LoggerFactory.getLogger(NatsConnections.class);
  private static final Map<NatsIO.ConnectionConfiguration, Shared> SHARED = new HashMap<>();
  private static final java.lang.ref.Cleaner ABANDONED_LEASES = java.lang.ref.Cleaner.create();

  private NatsConnections() {}

  /**
   * A connection to the configured servers, shared with every other lease of the same configuration.
   * Connecting (a TCP and TLS handshake, up to the connect timeout per server) happens outside the
   * JVM-wide lock, so leases of other configurations, and releases, never wait for it; threads asking
   * for the same configuration meanwhile wait for that one attempt rather than connect twice.
   */
  static Lease acquire(NatsIO.ConnectionConfiguration configuration) {
    Shared shared;
    boolean connectHere = false;
    synchronized (SHARED) {
      shared = SHARED.get(configuration);
      if (shared == null || shared.isClosed()) {
        shared = new Shared();
        SHARED.put(configuration, shared);
        connectHere = true;
      }
      shared.leases++; // Held while connecting too, so a release cannot drop the entry meanwhile.
    }
    if (connectHere) {
      try {
        shared.connected.complete(connect(configuration));
      } catch (RuntimeException e) {
        shared.connected.completeExceptionally(e);
        synchronized (SHARED) {
          SHARED.remove(configuration, shared);
        }
        throw e;
      }
    }
    try {
      return new Lease(configuration, shared, shared.connected.join());
    } catch (java.util.concurrent.CompletionException e) {
      synchronized (SHARED) {
        shared.leases--;
      }
      // Another thread's attempt failed: fail alike (its error names the servers and the reason).
      throw e.getCause() instanceof RuntimeException ? (RuntimeException) e.getCause() : e;
    }
  }

  /**
   * A lease that {@code holder} (a DoFn instance) keeps for its life and closes in its teardown,
   * and that is also closed once {@code holder} is garbage collected: runners do not promise to call
   * teardown (Flink batch drops some DoFn instances without it), and a lease never closed would keep
   * its connection open, reconnecting, for as long as the JVM runs.
   */
  static Lease acquireFor(Object holder, NatsIO.ConnectionConfiguration configuration) {
    Lease lease = acquire(configuration);
    ABANDONED_LEASES.register(holder, lease::close);
    return lease;
  }

  /**
   * Opens a dedicated connection, translating failures into an error that names the servers, says
   * what went wrong (refused, authentication, TLS) and what to check. jnats makes one pass over the
   * servers on a first connect, each attempt bounded by the connect timeout, and does not retry an
   * authentication failure, so a wrong setting fails instead of hanging. (jnats 2.26 notices a
   * refused login only when its handshake times out, so that failure takes the full connect
   * timeout; refused connections and TLS failures are immediate.)
   */
  static Connection connect(NatsIO.ConnectionConfiguration configuration) {
    io.nats.client.Options options;
    FirstConnectErrors errors = new FirstConnectErrors();
    try {
      options = configuration.toOptionsBuilder().errorListener(errors).build();
    } catch (GeneralSecurityException | IOException | RuntimeException e) {
      throw new NatsIOException(
          "Could not set up the connection to NATS at " + configuration.displayServers() + ": " + e.getMessage()
              + ". Check the TLS and credentials settings given to NatsIO (files must exist on every worker).",
          e);
    }
    try {
      Connection connection = Nats.connect(options);
      errors.connected = true;
      return connection;
    } catch (IOException e) {
      throw new NatsIOException(
          "Could not connect to NATS at " + configuration.displayServers() + ": " + describe(e, errors)
              + ". Check that the server is running and reachable, and the URL, credentials and TLS "
              + "settings given to NatsIO (withServers / withConnectionConfiguration).",
          e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new NatsIOException("Interrupted while connecting to NATS at " + configuration.displayServers(), e);
    }
  }

  /**
   * Names the root cause of a failed connect in words a user can act on. jnats's own message is
   * often just "Unable to connect to NATS servers"; the cause chain and suppressed exceptions say
   * why. None of these messages carries a credential (jnats never puts one in an exception).
   */
  static String describe(Throwable error, FirstConnectErrors reported) {
    List<Throwable> chain = new ArrayList<>();
    collect(error, chain, 0);
    for (Throwable t : reported.exceptions) {
      collect(t, chain, 0);
    }
    for (Throwable t : chain) {
      if (t instanceof AuthenticationException || mentions(t, "Authorization Violation") || mentions(t, "Authentication")) {
        return "authentication failed (" + t.getMessage() + "): the server refused the credentials";
      }
    }
    for (String text : reported.errors) {
      if (text.contains("Authorization Violation") || text.contains("Authentication")) {
        return "authentication failed (" + text + "): the server refused the credentials";
      }
    }
    for (Throwable t : chain) {
      if (t instanceof SSLException || t instanceof java.security.cert.CertificateException
          || t instanceof java.security.cert.CertPathValidatorException) {
        return "TLS handshake failed (" + rootMessage(t) + "): is the server's certificate signed by a CA NatsIO "
            + "trusts (withCaCertificate / withTrustStore), and does it name the host in the URL?";
      }
    }
    for (Throwable t : chain) {
      if (t instanceof java.net.ConnectException || t instanceof java.net.UnknownHostException
          || t instanceof java.net.SocketTimeoutException) {
        return "server unreachable (" + t.getClass().getSimpleName() + ": " + t.getMessage() + ")";
      }
    }
    for (Throwable t : chain) {
      if (t instanceof java.util.concurrent.TimeoutException) {
        return "server unreachable or not answering (no NATS handshake within the connect timeout)";
      }
    }
    return String.valueOf(error.getMessage()) + (chain.size() > 1 ? " (" + rootMessage(chain.get(chain.size() - 1)) + ")" : "");
  }

  /**
   * jnats reports why each attempt of a first connect failed only to its error listener (the
   * exception {@code Nats.connect} throws says just "Unable to connect"): this one keeps those
   * reports until the connection is up. Afterwards it keeps the subjects the server refused a
   * publish to: a request to a denied subject (a JetStream API call the user lacks the permission
   * for) only times out in jnats, and {@link JetStreamMetadata#refusal} looks here to tell that
   * from an outage.
   *
   * <p>It also replaces jnats's default listener, which logs through java.util.logging at SEVERE
   * and so bypassed the pipeline's SLF4J set-up with alarming lines around NatsIO's own error.
   * Here everything goes to SLF4J: problems during the first connect at DEBUG (NatsIO's exception
   * then says what failed and what to do), problems of a live connection at WARN, routine pull
   * statuses at DEBUG.
   */
  static final class FirstConnectErrors implements ErrorListener {
    private static final Logger JNATS = LoggerFactory.getLogger("dev.natsio.beam.jnats");
    private static final java.util.regex.Pattern DENIED_PUBLISH =
        java.util.regex.Pattern.compile("Permissions Violation for Publish to \"?([^\"\\s]+)\"?");
    final List<Throwable> exceptions = new CopyOnWriteArrayList<>();
    final List<String> errors = new CopyOnWriteArrayList<>();
    private final java.util.Set<String> deniedSubjects = java.util.concurrent.ConcurrentHashMap.newKeySet();
    volatile boolean connected;

    @Override
    public void errorOccurred(Connection connection, String error) {
      java.util.regex.Matcher denied = DENIED_PUBLISH.matcher(error);
      if (denied.find() && deniedSubjects.size() < 1_000) {
        deniedSubjects.add(denied.group(1));
      }
      report(errors, error, supplyMessage("The NATS server reported an error", connection, null, null, "error", error));
    }

    /** A JetStream API subject about {@code stream} the server refused a publish to, or null. */
    @org.checkerframework.checker.nullness.qual.Nullable String deniedApiSubjectFor(String stream) {
      for (String subject : deniedSubjects) {
        if (subject.contains(".API.") && subject.endsWith("." + stream)) {
          return subject;
        }
      }
      return null;
    }

    @Override
    public void exceptionOccurred(Connection connection, Exception exception) {
      report(exceptions, exception, supplyMessage("NATS connection problem", connection, null, null, "exception", exception));
    }

    /** Keeps a first-connect problem for NatsIO's exception, and logs it at the level for its phase. */
    private <T> void report(List<T> kept, T problem, String message) {
      if (!connected && kept.size() < 20) {
        kept.add(problem);
      }
      if (connected) {
        JNATS.warn(message);
      } else {
        JNATS.debug(message);
      }
    }

    @Override
    public void slowConsumerDetected(Connection connection, Consumer consumer) {
      JNATS.warn(supplyMessage("Slow consumer: messages are being dropped", connection, consumer, null));
    }

    @Override
    public void messageDiscarded(Connection connection, Message message) {
      JNATS.debug(supplyMessage("Message discarded", connection, null, null, "subject", message.getSubject()));
    }

    @Override
    public void heartbeatAlarm(Connection connection, JetStreamSubscription sub, long lastStreamSequence, long lastConsumerSequence) {
      JNATS.warn(supplyMessage("JetStream heartbeat missed", connection, null, sub,
          "lastStreamSequence", lastStreamSequence, "lastConsumerSequence", lastConsumerSequence));
    }

    @Override
    public void unhandledStatus(Connection connection, JetStreamSubscription sub, Status status) {
      JNATS.warn(supplyMessage("Unhandled JetStream status", connection, null, sub, "status", status));
    }

    @Override
    public void pullStatusWarning(Connection connection, JetStreamSubscription sub, Status status) {
      JNATS.debug(supplyMessage("JetStream pull status", connection, null, sub, "status", status));
    }

    @Override
    public void pullStatusError(Connection connection, JetStreamSubscription sub, Status status) {
      JNATS.warn(supplyMessage("JetStream pull error", connection, null, sub, "status", status));
    }

    @Override
    public void socketWriteTimeout(Connection connection) {
      JNATS.warn(supplyMessage("NATS socket write timed out", connection, null, null));
    }
  }

  private static void collect(Throwable t, List<Throwable> chain, int depth) {
    if (t == null || depth > 10 || chain.contains(t)) {
      return;
    }
    chain.add(t);
    for (Throwable suppressed : t.getSuppressed()) {
      collect(suppressed, chain, depth + 1);
    }
    collect(t.getCause(), chain, depth + 1);
  }

  private static boolean mentions(Throwable t, String text) {
    return t.getMessage() != null && t.getMessage().contains(text);
  }

  private static String rootMessage(Throwable t) {
    Throwable root = t;
    while (root.getCause() != null && root.getCause() != root) {
      root = root.getCause();
    }
    return root.getMessage() == null ? root.getClass().getSimpleName() : root.getMessage();
  }

  private static void release(NatsIO.ConnectionConfiguration configuration, Shared released) {
    Connection toClose = null;
    synchronized (SHARED) {
      if (--released.leases == 0) {
        SHARED.remove(configuration, released);
        toClose = released.connected.getNow(null);
      }
    }
    if (toClose != null) {
      try {
        toClose.close();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      } catch (RuntimeException e) {
        LOG.debug("Closing the NATS connection to {} failed", configuration.displayServers(), e);
      }
    }
  }

  /** One shared connection: completed once its connect returns. */
  private static final class Shared {
    final java.util.concurrent.CompletableFuture<Connection> connected = new java.util.concurrent.CompletableFuture<>();
    int leases;

    boolean isClosed() {
      Connection connection = connected.getNow(null);
      return connection != null && connection.getStatus() == Connection.Status.CLOSED;
    }
  }

  /** A use of a shared connection; closing it releases the use, never more than once. */
  static final class Lease implements AutoCloseable {
    private final NatsIO.ConnectionConfiguration configuration;
    private final Shared shared;
    private final Connection connection;
    private boolean released;

    private Lease(NatsIO.ConnectionConfiguration configuration, Shared shared, Connection connection) {
      this.configuration = configuration;
      this.shared = shared;
      this.connection = connection;
    }

    Connection connection() {
      return connection;
    }

    NatsIO.ConnectionConfiguration configuration() {
      return configuration;
    }

    @Override
    public synchronized void close() {
      if (!released) {
        released = true;
        release(configuration, shared);
      }
    }
  }
}
