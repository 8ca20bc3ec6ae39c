package dev.natsio.beam;

import io.nats.client.Connection;
import io.nats.client.Message;
import io.nats.client.Subscription;
import java.time.Duration;
import java.util.concurrent.TimeoutException;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Per-JVM Core NATS subscriptions of {@link ReadFromCoreSubjectDoFn}, kept open between bundles.
 *
 * <p>A Core subscription has no position to resume from: whatever is published while none is
 * open is gone. So a read's subscription must outlive the bundle that opened it. When a bundle
 * ends, its subscription is parked ({@link ParkedReaders}) under the read's id (one per {@code
 * NatsIO.read()} transform, so two reads of one subject in one JVM each get every message) and the
 * next bundle of that read takes it back. Meanwhile jnats buffers incoming messages in the subscription's pending
 * queue, bounded by the read's {@code maxBufferedMessages} (and 64 MiB); beyond that jnats drops
 * messages and counts them, and the next bundle reports the count as the {@code
 * NatsIO/coreMessagesDropped} metric and logs it. Nothing is dropped silently: messages still
 * buffered when a subscription is closed are logged and, when the read itself closes it, counted.
 *
 * <p>A subscription parked longer than {@link #IDLE_TIMEOUT_MILLIS} (its read moved to another
 * worker, or the pipeline stopped) is closed by a background sweep, and a DoFn's teardown closes
 * its read's parked subscription: a forgotten queue-group member would take its share of messages
 * and lose them.
 */
final class CoreSubscriptions {
  private static final Logger LOG = LoggerFactory.getLogger(CoreSubscriptions.class);
  static final long IDLE_TIMEOUT_MILLIS = 30_000;
  static final long MAX_BUFFERED_BYTES = 64L * 1024 * 1024;
  static final ParkedReaders<String, CoreSubscription> PARKED = new ParkedReaders<>("core-subscription", IDLE_TIMEOUT_MILLIS);
  /** Subscriptions opened in this JVM, for tests. */
  static final java.util.concurrent.atomic.AtomicLong OPENED = new java.util.concurrent.atomic.AtomicLong();

  private CoreSubscriptions() {}

  /** One open subscription with its bounded buffer, its drop accounting and a push-back slot. */
  static final class CoreSubscription implements ParkedReaders.Reader {
    private static final long DROP_LOG_INTERVAL_MILLIS = 10_000;

    private final NatsIO.ConnectionConfiguration configuration;
    private final String subject;
    private final NatsConnections.Lease lease;
    private final Subscription subscription;
    private final int maxBuffered;
    private @Nullable Message pushedBack;
    private long dropsReported;
    private long dropsLogged;
    private long lastDropLogMillis;

    private CoreSubscription(
        NatsIO.ConnectionConfiguration configuration, String subject, NatsConnections.Lease lease, Subscription subscription, int maxBuffered) {
      this.configuration = configuration;
      this.subject = subject;
      this.lease = lease;
      this.subscription = subscription;
      this.maxBuffered = maxBuffered;
    }

    /**
     * Subscribes and waits until the server has the subscription (a flush), so messages published
     * after this returns are received.
     */
    static CoreSubscription open(
        NatsIO.ConnectionConfiguration configuration, String subject, @Nullable String queueGroup, int maxBuffered) {
      NatsConnections.Lease lease = NatsConnections.acquire(configuration);
      try {
        Connection connection = lease.connection();
        Subscription subscription = queueGroup == null ? connection.subscribe(subject) : connection.subscribe(subject, queueGroup);
        subscription.setPendingLimits(maxBuffered, MAX_BUFFERED_BYTES);
        try {
          connection.flush(Duration.ofMillis(configuration.getConnectTimeout().getMillis()));
        } catch (TimeoutException e) {
          // Disconnected: jnats sends the subscription when it reconnects.
          LOG.info("NATS at {} did not confirm the subscription to '{}' yet; it is sent on reconnect", configuration.displayServers(), subject);
        }
        OPENED.incrementAndGet();
        return new CoreSubscription(configuration, subject, lease, subscription, maxBuffered);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        lease.close();
        throw new NatsIOException("Interrupted while subscribing to '" + subject + "' on " + configuration.displayServers(), e);
      } catch (RuntimeException e) {
        lease.close();
        throw new NatsIOException(
            "Could not subscribe to '" + subject + "'" + (queueGroup == null ? "" : " in queue group '" + queueGroup + "'")
                + " on " + configuration.displayServers() + ": " + e.getMessage(),
            e);
      }
    }

    /** The next message, or null when none arrives within {@code timeout}. */
    @Nullable Message next(Duration timeout) throws InterruptedException {
      if (pushedBack != null) {
        Message message = pushedBack;
        pushedBack = null;
        return message;
      }
      return subscription.nextMessage(timeout);
    }

    /** Returns {@code message} to the front: the next {@link #next} yields it again. */
    void pushBack(Message message) {
      pushedBack = message;
    }

    /** Messages jnats dropped because the buffer was full since the last call; logs them (at most every 10 s). */
    long takeNewDrops() {
      long total = subscription.getDroppedCount();
      long fresh = total - dropsReported;
      dropsReported = total;
      long now = System.currentTimeMillis();
      if (total > dropsLogged && now - lastDropLogMillis >= DROP_LOG_INTERVAL_MILLIS) {
        LOG.warn(
            "Core subscription to '{}' on {} dropped {} message(s) ({} in all): its buffer of {} messages was full between "
                + "bundles. Core reads are at-most-once; raise withMaxBufferedMessages, add workers in a queue group, or use a "
                + "JetStream stream to keep every message.",
            subject, configuration.displayServers(), total - dropsLogged, total, maxBuffered);
        dropsLogged = total;
        lastDropLogMillis = now;
      }
      return fresh;
    }

    @Override
    public void closeParked(String reason) {
      close(reason);
    }

    /**
     * Unsubscribes and returns the messages lost with it: those still buffered (including a
     * pushed-back one) and drops not yet reported. Logs them, and drops not logged yet.
     */
    long close(String reason) {
      long discarded = 0;
      long totalDrops = dropsLogged;
      try {
        totalDrops = subscription.getDroppedCount();
        discarded = subscription.getPendingMessageCount() + (pushedBack != null ? 1 : 0) + (totalDrops - dropsReported);
        pushedBack = null;
        subscription.unsubscribe();
      } catch (RuntimeException e) {
        LOG.debug("Unsubscribing from '{}' failed", subject, e);
      } finally {
        lease.close();
      }
      if (discarded > 0 || totalDrops > dropsLogged) {
        LOG.warn(
            "Closed the Core subscription to '{}' on {} because {}: {} message(s) dropped in all because its buffer of {} was "
                + "full, {} more received but not read (at-most-once).",
            subject, configuration.displayServers(), reason, totalDrops, maxBuffered,
            discarded - (totalDrops - dropsReported));
      } else {
        LOG.debug("Closed the Core subscription to '{}' because {}", subject, reason);
      }
      return discarded;
    }
  }
}
