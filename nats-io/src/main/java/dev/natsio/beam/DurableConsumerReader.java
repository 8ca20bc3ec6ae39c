package dev.natsio.beam;

import io.nats.client.ConsumeOptions;
import io.nats.client.ConsumerContext;
import io.nats.client.IterableConsumer;
import io.nats.client.JetStreamApiException;
import io.nats.client.JetStreamManagement;
import io.nats.client.JetStreamStatusCheckedException;
import io.nats.client.Message;
import io.nats.client.api.AckPolicy;
import io.nats.client.api.ConsumerConfiguration;
import io.nats.client.api.ConsumerInfo;
import java.io.IOException;
import java.time.Duration;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Pulls from a durable JetStream pull consumer for {@link ReadFromDurableConsumerDoFn}, and makes
 * sure that consumer exists and suits an at-least-once read.
 *
 * <p>The server keeps the position: the consumer's ack floor and its pending acks. The reader pulls
 * with {@link IterableConsumer} (one batch in flight) and never acknowledges anything itself: the
 * DoFn acknowledges by reply subject once the runner has committed the bundle that output a
 * message. It is parked between bundles ({@link ParkedReaders}), so messages pulled ahead are not
 * lost with the bundle. When it is closed, messages pulled but never output are negatively
 * acknowledged, so the server redelivers them now rather than after the ack wait.
 */
final class DurableConsumerReader implements ParkedReaders.Reader {
  private static final Logger LOG = LoggerFactory.getLogger(DurableConsumerReader.class);
  static final Duration PULL_EXPIRY = Duration.ofSeconds(2);
  static final long IDLE_TIMEOUT_MILLIS = 30_000;
  static final ParkedReaders<String, DurableConsumerReader> PARKED = new ParkedReaders<>("durable-consumer", IDLE_TIMEOUT_MILLIS);
  /** JetStream API error code for "consumer not found". */
  static final int CONSUMER_NOT_FOUND = 10014;

  private final NatsConnections.Lease lease;
  private final String stream;
  private final String consumer;
  private final IterableConsumer messages;
  private final Duration ackWait;
  private @Nullable Message pushedBack;

  private DurableConsumerReader(
      NatsConnections.Lease lease, String stream, String consumer, IterableConsumer messages, Duration ackWait) {
    this.lease = lease;
    this.stream = stream;
    this.consumer = consumer;
    this.messages = messages;
    this.ackWait = ackWait;
  }

  /**
   * Binds to the durable consumer {@code name} of {@code stream}, creating or updating it first
   * from {@code configurationJson} when given. Refuses push consumers and consumers that do not
   * acknowledge each message explicitly, with an error that says what to change.
   */
  static ConsumerInfo bind(
      NatsIO.ConnectionConfiguration configuration, JetStreamManagement jsm, String stream, String name,
      @Nullable String configurationJson) {
    String where = "on stream '" + stream + "' at " + configuration.displayServers();
    ConsumerInfo info;
    try {
      if (configurationJson != null) {
        info = jsm.addOrUpdateConsumer(stream, ConsumerConfiguration.builder().json(configurationJson).build());
      } else {
        info = jsm.getConsumerInfo(stream, name);
      }
    } catch (JetStreamApiException e) {
      if (e.getApiErrorCode() == CONSUMER_NOT_FOUND) {
        throw new NatsIOException(
            "Durable consumer '" + name + "' does not exist " + where + ". Create it (for example 'nats consumer add "
                + stream + " " + name + " --pull --ack explicit'), or let NatsIO create it with withConsumerConfiguration(...).");
      }
      throw new NatsIOException(
          (configurationJson != null ? "Could not create or update" : "Could not look up") + " durable consumer '" + name + "' "
              + where + ": " + e.getMessage() + " (JetStream error " + e.getApiErrorCode() + ")",
          e);
    } catch (IOException | RuntimeException e) {
      throw new NatsIOException("Could not reach JetStream to bind durable consumer '" + name + "' " + where + ": " + e.getMessage(), e);
    }
    ConsumerConfiguration bound = info.getConsumerConfiguration();
    if (bound.getDeliverSubject() != null) {
      throw new NatsIOException(
          "Consumer '" + name + "' " + where + " is a push consumer (deliver subject " + bound.getDeliverSubject()
              + "); NatsIO's durable mode pulls. Use a pull consumer (no deliver subject).");
    }
    if (bound.getAckPolicy() != AckPolicy.Explicit) {
      throw new NatsIOException(
          "Consumer '" + name + "' " + where + " has ack policy " + bound.getAckPolicy()
              + "; NatsIO's durable mode acknowledges each message after the runner commits it, which needs AckPolicy.Explicit.");
    }
    return info;
  }

  /**
   * Starts pulling from {@code consumer}; the consumer must exist ({@link #bind}). Pulls up to
   * {@code batchSize} messages ahead; with a rate limit, at most half an ack wait's worth, since a
   * pulled message's ack wait runs while it waits in the client's buffer, before it can be kept
   * alive ({@link PendingAcks}).
   */
  static DurableConsumerReader open(
      NatsIO.ConnectionConfiguration configuration, String stream, String consumer, int batchSize,
      @Nullable Double maxMessagesPerSecond) {
    NatsConnections.Lease lease = NatsConnections.acquire(configuration);
    try {
      ConsumerContext context = lease.connection().getConsumerContext(stream, consumer, configuration.jetStreamOptions());
      Duration configured = context.getCachedConsumerInfo().getConsumerConfiguration().getAckWait();
      Duration ackWait = configured == null ? Duration.ofSeconds(30) : configured;
      int pullAhead = batchSize;
      if (maxMessagesPerSecond != null) {
        pullAhead = (int) Math.min(batchSize, Math.max(1, (long) (maxMessagesPerSecond * ackWait.toMillis() / 2_000.0)));
      }
      IterableConsumer messages =
          context.iterate(ConsumeOptions.builder().batchSize(pullAhead).expiresIn(PULL_EXPIRY.toMillis()).build());
      return new DurableConsumerReader(lease, stream, consumer, messages, ackWait);
    } catch (JetStreamApiException | IOException | RuntimeException e) {
      lease.close();
      throw new NatsIOException(
          "Could not start pulling from durable consumer '" + consumer + "' on stream '" + stream + "' at "
              + configuration.displayServers() + ": " + e.getMessage(),
          e);
    }
  }

  /** How long the server waits for an ack before redelivering: acks registered later are pointless. */
  Duration ackWait() {
    return ackWait;
  }

  /** The next message, or null when none arrives within {@code timeout}. */
  @Nullable Message next(Duration timeout) throws InterruptedException {
    if (pushedBack != null) {
      Message message = pushedBack;
      pushedBack = null;
      return message;
    }
    try {
      return messages.nextMessage(timeout);
    } catch (JetStreamStatusCheckedException e) {
      throw new NatsIOException("Pulling from durable consumer '" + consumer + "' on stream '" + stream + "' failed: " + e.getMessage(), e);
    }
  }

  /** Returns {@code message} to the front: the next {@link #next} yields it again. */
  void pushBack(Message message) {
    pushedBack = message;
  }

  /** Stops pulling; messages pulled but not output are nak'ed so the server redelivers them at once. */
  void close() {
    int returned = 0;
    try {
      messages.stop();
      if (pushedBack != null) {
        pushedBack.nak();
        pushedBack = null;
        returned++;
      }
      long deadline = System.nanoTime() + Duration.ofMillis(200).toNanos();
      Message message;
      while (System.nanoTime() < deadline && (message = messages.nextMessage(Duration.ofMillis(20))) != null) {
        message.nak();
        returned++;
      }
      messages.close();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (Exception e) {
      LOG.debug("Stopping the pull from consumer {} on stream {} failed; unacknowledged messages return after the ack wait", consumer, stream, e);
    } finally {
      lease.close();
    }
    if (returned > 0) {
      LOG.debug("Returned {} pulled but unread message(s) to consumer {} on stream {}", returned, consumer, stream);
    }
  }

  @Override
  public void closeParked(String reason) {
    LOG.debug("Closing the pull from consumer {} on stream {} because {}", consumer, stream, reason);
    close();
  }
}
