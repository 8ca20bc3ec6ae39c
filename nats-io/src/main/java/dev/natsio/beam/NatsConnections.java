package dev.natsio.beam;

import io.nats.client.AuthenticationException;
import io.nats.client.Connection;
import io.nats.client.Nats;
import io.nats.client.Consumer;
import io.nats.client.ErrorListener;
import io.nats.client.JetStreamSubscription;
import io.nats.client.Message;
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
 */
final class NatsConnections {
  private static final Logger LOG = LoggerFactory.getLogger(NatsConnections.class);
  private static final Map<NatsIO.ConnectionConfiguration, Shared> SHARED = new HashMap<>();
  private static final java.lang.ref.Cleaner ABANDONED_LEASES = java.lang.ref.Cleaner.create();

  private NatsConnections() {}

  /** A connection to the configured servers, shared with every other lease of the same configuration. */
  static Lease acquire(NatsIO.ConnectionConfiguration configuration) {
    synchronized (SHARED) {
      Shared shared = SHARED.get(configuration);
      if (shared == null || shared.connection.getStatus() == Connection.Status.CLOSED) {
        shared = new Shared(connect(configuration));
        SHARED.put(configuration, shared);
      }
      shared.leases++;
      return new Lease(configuration, shared.connection);
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

  /** The number of open shared connections in this JVM (for tests of connection bounds). */
  static int openConnections() {
    synchronized (SHARED) {
      return SHARED.size();
    }
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
   * reports until the connection is up.
   *
   * <p>It also replaces jnats's default listener, which logs through java.util.logging at SEVERE
   * and so bypassed the pipeline's SLF4J set-up with alarming lines around NatsIO's own error.
   * Here everything goes to SLF4J: problems during the first connect at DEBUG (NatsIO's exception
   * then says what failed and what to do), problems of a live connection at WARN, routine pull
   * statuses at DEBUG.
   */
  static final class FirstConnectErrors implements ErrorListener {
    private static final Logger JNATS = LoggerFactory.getLogger("dev.natsio.beam.jnats");
    final List<Throwable> exceptions = new CopyOnWriteArrayList<>();
    final List<String> errors = new CopyOnWriteArrayList<>();
    volatile boolean connected;

    @Override
    public void errorOccurred(Connection connection, String error) {
      report(errors, error, supplyMessage("The NATS server reported an error", connection, null, null, "error", error));
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

  private static void release(NatsIO.ConnectionConfiguration configuration, Connection connection) {
    Connection toClose = null;
    synchronized (SHARED) {
      Shared shared = SHARED.get(configuration);
      if (shared != null && shared.connection == connection && --shared.leases == 0) {
        SHARED.remove(configuration);
        toClose = connection;
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

  private static final class Shared {
    final Connection connection;
    int leases;

    Shared(Connection connection) {
      this.connection = connection;
    }
  }

  /** A use of a shared connection; closing it releases the use, never more than once. */
  static final class Lease implements AutoCloseable {
    private final NatsIO.ConnectionConfiguration configuration;
    private final Connection connection;
    private boolean released;

    private Lease(NatsIO.ConnectionConfiguration configuration, Connection connection) {
      this.configuration = configuration;
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
        release(configuration, connection);
      }
    }
  }
}
