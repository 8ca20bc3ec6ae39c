package dev.natsio.beam;

import io.nats.client.JetStreamApiException;
import io.nats.client.JetStreamManagement;
import io.nats.client.JetStreamStatusException;
import io.nats.client.JetStreamSubscription;
import io.nats.client.Message;
import io.nats.client.PullSubscribeOptions;
import io.nats.client.api.AckPolicy;
import io.nats.client.api.ConsumerConfiguration;
import io.nats.client.api.ConsumerInfo;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.List;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Pulls from a durable JetStream pull consumer for {@link ReadFromDurableConsumerDoFn}, and makes
 * sure that consumer exists and suits an at-least-once read.
 *
 * <p>The server keeps the position: the consumer's ack floor and its pending acks. The reader
 * fetches a batch at a time over one pull subscription, only when a bundle asks for a message, so a
 * parked reader has no pull in flight. It never acknowledges anything itself: the DoFn acknowledges
 * by reply subject once the runner has committed the bundle that output a message. It is parked
 * between bundles ({@link ParkedReaders}), so messages fetched ahead are not lost with the bundle;
 * until handed to a bundle they are kept alive with in-progress acks ({@link PendingAcks}), as a
 * bundle keeps its output alive until its commit, so no message's ack wait runs out while it waits
 * here. When the reader is closed, messages fetched but never output are negatively acknowledged,
 * so the server redelivers them now rather than after the ack wait.
 */
final class DurableConsumerReader implements ParkedReaders.Reader {
  private static final Logger LOG = LoggerFactory.getLogger(DurableConsumerReader.class);
  static final long IDLE_TIMEOUT_MILLIS = 30_000;
  static final ParkedReaders<String, DurableConsumerReader> PARKED = new ParkedReaders<>("durable-consumer", IDLE_TIMEOUT_MILLIS);
  /** JetStream API error code for "consumer not found". */
  static final int CONSUMER_NOT_FOUND = 10014;

  private final NatsConnections.Lease lease;
  private final String stream;
  private final String consumer;
  private final JetStreamSubscription subscription;
  private final int batchSize;
  private final Duration ackWait;
  /** Fetched, not yet handed to a bundle; {@link #buffered} keeps them alive meanwhile. */
  private final ArrayDeque<Message> buffer = new ArrayDeque<>();
  private final PendingAcks keepAlive;
  private final PendingAcks.Batch buffered;

  private DurableConsumerReader(
      NatsIO.ConnectionConfiguration configuration, NatsConnections.Lease lease, String stream, String consumer,
      JetStreamSubscription subscription, int batchSize, Duration ackWait) {
    this.lease = lease;
    this.stream = stream;
    this.consumer = consumer;
    this.subscription = subscription;
    this.batchSize = batchSize;
    this.ackWait = ackWait;
    this.keepAlive = new PendingAcks(configuration, ackWait);
    this.buffered = keepAlive.open();
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

  /** Starts pulling from {@code consumer}, {@code batchSize} messages at a time; the consumer must exist ({@link #bind}). */
  static DurableConsumerReader open(NatsIO.ConnectionConfiguration configuration, String stream, String consumer, int batchSize) {
    NatsConnections.Lease lease = NatsConnections.acquire(configuration);
    try {
      ConsumerInfo info = lease.connection().jetStreamManagement(configuration.jetStreamOptions()).getConsumerInfo(stream, consumer);
      Duration ackWait = info.getConsumerConfiguration().getAckWait();
      JetStreamSubscription subscription =
          lease.connection().jetStream(configuration.jetStreamOptions()).subscribe(null, PullSubscribeOptions.bind(stream, consumer));
      return new DurableConsumerReader(
          configuration, lease, stream, consumer, subscription, batchSize, ackWait == null ? Duration.ofSeconds(30) : ackWait);
    } catch (JetStreamApiException | IOException | RuntimeException e) {
      lease.close();
      throw new NatsIOException(
          "Could not start pulling from durable consumer '" + consumer + "' on stream '" + stream + "' at "
              + configuration.displayServers() + ": " + e.getMessage(),
          e);
    }
  }

  /** How long the server waits for an ack before redelivering. */
  Duration ackWait() {
    return ackWait;
  }

  /**
   * The next message, or null when none arrives within {@code timeout}. It stays kept alive by this
   * reader until {@link #handOver}. Pulls only from here, so a parked reader has no pull in flight
   * and nothing arrives unseen.
   */
  @Nullable Message next(Duration timeout) {
    if (buffer.isEmpty()) {
      List<Message> fetched;
      try {
        fetched = subscription.fetch(batchSize, timeout);
      } catch (JetStreamStatusException e) {
        throw new NatsIOException("Pulling from durable consumer '" + consumer + "' on stream '" + stream + "' failed: " + e.getMessage(), e);
      }
      for (Message message : fetched) {
        if (message.isJetStream()) {
          buffer.add(message);
          buffered.add(message.getReplyTo());
        }
      }
    }
    return buffer.poll();
  }

  /**
   * Hands {@code message}, just taken with {@link #next}, to a bundle, which keeps it alive from
   * now on. Returns when the server last heard about it ({@link System#nanoTime()}), which is when
   * its ack wait started over.
   */
  long handOver(Message message) {
    long touched = buffered.touchedNanos();
    buffered.remove(message.getReplyTo());
    return touched;
  }

  /** Returns {@code message} to the front: the next {@link #next} yields it again. */
  void pushBack(Message message) {
    buffer.addFirst(message);
  }

  /** Stops pulling; messages fetched but not handed over are nak'ed so the server redelivers them at once. */
  void close() {
    int returned = 0;
    keepAlive.discard(buffered);
    keepAlive.close();
    try {
      Message message;
      while ((message = buffer.poll()) != null) {
        message.nak();
        returned++;
      }
      subscription.unsubscribe();
    } catch (RuntimeException e) {
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
