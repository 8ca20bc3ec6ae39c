package dev.natsio.beam;

import io.nats.client.Connection;
import io.nats.client.Nats;
import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
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

  /** The number of open shared connections in this JVM (for tests of connection bounds). */
  static int openConnections() {
    synchronized (SHARED) {
      return SHARED.size();
    }
  }

  /** Opens a dedicated connection, translating failures into an error that says what to check. */
  static Connection connect(NatsIO.ConnectionConfiguration configuration) {
    try {
      return Nats.connect(configuration.toOptions());
    } catch (IOException e) {
      throw new NatsIOException(
          "Could not connect to NATS at " + configuration.displayServers() + ": " + e.getMessage()
              + ". Check that the server is running and reachable, and the URL, credentials and TLS "
              + "settings given to NatsIO (withServers / withConnectionConfiguration).",
          e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new NatsIOException("Interrupted while connecting to NATS at " + configuration.displayServers(), e);
    }
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
