package dev.natsio.beam;

import io.nats.client.ConsumeOptions;
import io.nats.client.IterableConsumer;
import io.nats.client.JetStreamApiException;
import io.nats.client.JetStreamStatusCheckedException;
import io.nats.client.Message;
import io.nats.client.OrderedConsumerContext;
import io.nats.client.StreamContext;
import io.nats.client.api.DeliverPolicy;
import io.nats.client.api.OrderedConsumerConfiguration;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads a stream in sequence order from a given position, through a jnats ordered consumer.
 *
 * <p>An ordered consumer is an ephemeral, ack-none, flow-controlled consumer that jnats recreates
 * at the last delivered sequence + 1 whenever it detects a gap, a missed heartbeat or a server
 * restart, so it never skips or repeats a message. It is started by sequence (the runner's
 * restriction is the source of truth for position, not the server) and pulled with {@link
 * IterableConsumer}, which keeps one batch in flight ahead of the reader.
 *
 * <p>Pulls expire after {@link #PULL_EXPIRY}, not jnats's 30 s default: after a server restart the
 * consumer notices the missing heartbeats and recovers within a few seconds.
 *
 * <p>{@link #pushBack} hands a message back when the restriction ends before it; the next read
 * from this reader returns it first, so the reader can be reused by the restriction that follows.
 * Between calls readers wait in {@link #PARKED}, keyed by their {@link Position}.
 * {@link #close()} stops pulling and deletes the server-side consumer (in the background) rather
 * than waiting for its inactivity threshold; {@link #closeAfterFailure()} only stops pulling.
 */
final class JetStreamReader implements AutoCloseable, ParkedReaders.Reader {
  private static final Logger LOG = LoggerFactory.getLogger(JetStreamReader.class);
  static final Duration PULL_EXPIRY = Duration.ofSeconds(2);
  /**
   * How long a reader may stay parked. Short: runners resume a restriction at once (Direct, Flink),
   * and a parked reader pulls nothing, so after about three seconds jnats raises a heartbeat alarm
   * (logged at SEVERE) and recreates its consumer in the background.
   */
  static final long IDLE_TIMEOUT_MILLIS = 2_000;
  /** Readers between two calls of a splittable read, parked under where they would read next. */
  static final ParkedReaders<Position, JetStreamReader> PARKED = new ParkedReaders<>("jetstream-reader", IDLE_TIMEOUT_MILLIS);
  /** Deletes closed readers' consumers, off the threads that close them. */
  private static final java.util.concurrent.ExecutorService CLEANUP =
      java.util.concurrent.Executors.newSingleThreadExecutor(runnable -> {
        Thread thread = new Thread(runnable, "natsio-consumer-cleanup");
        thread.setDaemon(true);
        return thread;
      });
  /** Readers opened in this JVM: lets tests see that resumed bundles reuse parked readers. */
  static final java.util.concurrent.atomic.AtomicLong OPENED = new java.util.concurrent.atomic.AtomicLong();

  private final NatsConnections.Lease lease;
  private final String stream;
  private final StreamContext streamContext;
  private final OrderedConsumerContext consumer;
  private final IterableConsumer messages;
  private @Nullable Message pushedBack;

  private JetStreamReader(
      NatsConnections.Lease lease, String stream, StreamContext streamContext, OrderedConsumerContext consumer, IterableConsumer messages) {
    this.lease = lease;
    this.stream = stream;
    this.streamContext = streamContext;
    this.consumer = consumer;
    this.messages = messages;
  }

  /** Starts reading {@code stream} at {@code startSequence}, or at the first sequence after it that exists. */
  static JetStreamReader open(
      NatsIO.ConnectionConfiguration configuration, String stream, List<String> filterSubjects, long startSequence, int batchSize) {
    NatsConnections.Lease lease = NatsConnections.acquire(configuration);
    OPENED.incrementAndGet();
    try {
      StreamContext streamContext = lease.connection().getStreamContext(stream, configuration.jetStreamOptions());
      OrderedConsumerConfiguration config =
          new OrderedConsumerConfiguration()
              .deliverPolicy(DeliverPolicy.ByStartSequence)
              .startSequence(Math.max(1, startSequence));
      if (!filterSubjects.isEmpty()) {
        config.filterSubjects(filterSubjects);
      }
      OrderedConsumerContext consumer = streamContext.createOrderedConsumer(config);
      IterableConsumer messages =
          consumer.iterate(ConsumeOptions.builder().batchSize(batchSize).expiresIn(PULL_EXPIRY.toMillis()).build());
      return new JetStreamReader(lease, stream, streamContext, consumer, messages);
    } catch (JetStreamApiException | IOException | RuntimeException e) {
      lease.close();
      if (e instanceof JetStreamApiException && ((JetStreamApiException) e).getApiErrorCode() == JetStreamMetadata.STREAM_NOT_FOUND) {
        throw JetStreamReadCore.permanent(
            "JetStream stream '" + stream + "' does not exist on " + configuration.displayServers()
                + ". Create it first, or correct the name given to withStream(...).", e);
      }
      throw new NatsIOException(
          "Could not start reading JetStream stream '" + stream + "' at sequence " + startSequence + " on "
              + configuration.displayServers() + ": " + e.getMessage(), e);
    }
  }

  /** The next message, or null when none arrives within {@code timeout} (null: none is buffered now). */
  @Nullable Message next(@Nullable Duration timeout) throws InterruptedException {
    if (pushedBack != null) {
      Message message = pushedBack;
      pushedBack = null;
      return message;
    }
    try {
      return messages.nextMessage(timeout);
    } catch (JetStreamStatusCheckedException e) {
      throw new NatsIOException("Reading JetStream stream '" + stream + "' failed: " + e.getMessage(), e);
    }
  }

  /** Returns {@code message} to the front: the next {@link #next} call yields it again. */
  void pushBack(Message message) {
    this.pushedBack = message;
  }

  @Override
  public void closeParked(String reason) {
    LOG.debug("Closing the reader of stream {} parked idle: {}", stream, reason);
    close();
  }

  /**
   * Stops pulling and deletes the server-side consumer rather than leave it to its inactivity
   * threshold. The delete is a request, so it is sent from a background thread: the caller (a
   * runner's task thread, a DoFn's teardown) does not wait for it, nor for a server that is away.
   */
  @Override
  public void close() {
    String consumerName = stopPulling();
    if (consumerName == null || lease.connection().getStatus() != io.nats.client.Connection.Status.CONNECTED) {
      lease.close(); // Nothing to delete, or no server to ask now: the inactivity threshold removes it.
      return;
    }
    CLEANUP.execute(() -> {
      try {
        streamContext.deleteConsumer(consumerName);
      } catch (JetStreamApiException | IOException | RuntimeException e) {
        // Already gone, or the server went away: its inactive threshold removes it.
      } finally {
        lease.close();
      }
    });
  }

  /**
   * Stops pulling without a request to the server: after a failure the server is likely away, and
   * the consumer's inactivity threshold removes it.
   */
  void closeAfterFailure() {
    stopPulling();
    lease.close();
  }

  private @Nullable String stopPulling() {
    String consumerName = null;
    try {
      consumerName = consumer.getConsumerName();
      messages.stop();
      messages.close();
    } catch (Exception e) {
      LOG.debug("Stopping the ordered consumer on stream {} failed", stream, e);
    }
    return consumerName;
  }

  /** Where a reader would read next: the key it is parked under between calls. */
  static final class Position {
    final NatsIO.ConnectionConfiguration connection;
    final String stream;
    final List<String> filterSubjects;
    final long nextSequence;

    Position(NatsIO.ConnectionConfiguration connection, String stream, List<String> filterSubjects, long nextSequence) {
      this.connection = connection;
      this.stream = stream;
      this.filterSubjects = List.copyOf(filterSubjects);
      this.nextSequence = nextSequence;
    }

    @Override
    public boolean equals(@Nullable Object other) {
      if (!(other instanceof Position)) {
        return false;
      }
      Position that = (Position) other;
      return nextSequence == that.nextSequence
          && connection.equals(that.connection)
          && stream.equals(that.stream)
          && filterSubjects.equals(that.filterSubjects);
    }

    @Override
    public int hashCode() {
      return Objects.hash(connection, stream, filterSubjects, nextSequence);
    }
  }
}
