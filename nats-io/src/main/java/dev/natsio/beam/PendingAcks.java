package dev.natsio.beam;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The messages a durable-consumer read ({@link ReadFromDurableConsumerDoFn}) has output but not yet
 * acknowledged, because the runner has not committed them yet, kept alive on the server until it
 * does.
 *
 * <h3>Why</h3>
 *
 * <p>The server redelivers a message that is not acknowledged within the consumer's ack wait. A
 * message waits for its commit for as long as its bundle runs plus, on Flink, until the next
 * checkpoint completes: easily longer than an ack wait of a few seconds. Without a keep-alive every
 * such message would be delivered twice.
 *
 * <h3>How</h3>
 *
 * <p>Messages are grouped by the bundle that output them ({@link Batch}), each batch stamped with
 * when its first message was taken from the consumer (its delivery, as far as this worker can
 * tell). A timer sends JetStream's in-progress ack ({@code +WPI}) to the reply subject of every
 * message of a batch once half the ack wait has passed since the batch was last touched, which
 * restarts the server's ack-wait timer. The bundle's finalization callback ({@link #ack}) takes the
 * batch out and publishes {@code +ACK} for each message. A batch is kept alive for at most {@link
 * #KEEP_ALIVE_LIMIT} from its delivery, which is also the expiry the runner is given for the
 * callback: a commit that never comes (a failed bundle whose instance was never torn down, a
 * callback the runner dropped) then ends in a redelivery, marked by the delivered count, rather
 * than in a message held forever. {@link #close} (the DoFn's teardown, which follows a failure)
 * negatively acknowledges what is still pending, so the server redelivers it at once.
 *
 * <p>Failures to send in-progress acks or acks are logged and counted ({@code
 * NatsIO/ackFailures}), never thrown: the runner calls the finalization callback after the commit,
 * where an exception could only fail an unrelated bundle, and a lost ack is a redelivery, which
 * at-least-once allows.
 */
final class PendingAcks {
  private static final Logger LOG = LoggerFactory.getLogger(PendingAcks.class);
  private static final byte[] ACK = "+ACK".getBytes(StandardCharsets.US_ASCII);
  private static final byte[] IN_PROGRESS = "+WPI".getBytes(StandardCharsets.US_ASCII);
  private static final byte[] NAK = "-NAK".getBytes(StandardCharsets.US_ASCII);
  /** How long a message is kept alive waiting for its commit, from its delivery. */
  static final Duration KEEP_ALIVE_LIMIT = Duration.ofMinutes(10);
  private static final ScheduledExecutorService TIMER =
      Executors.newSingleThreadScheduledExecutor(
          runnable -> {
            Thread thread = new Thread(runnable, "natsio-ack-keepalive");
            thread.setDaemon(true);
            return thread;
          });

  /** Messages acknowledged in this JVM, for tests. */
  static final AtomicLong ACKED = new AtomicLong();
  /** In-progress acks sent in this JVM, for tests. */
  static final AtomicLong KEPT_ALIVE = new AtomicLong();
  /** Acks (or in-progress acks) that could not be sent in this JVM, for tests. */
  static final AtomicLong FAILED = new AtomicLong();

  private final Counter ackFailures = Metrics.counter("NatsIO", "ackFailures");
  private final NatsIO.ConnectionConfiguration configuration;
  private final long ackWaitNanos;
  private final Set<Batch> pending = ConcurrentHashMap.newKeySet();
  private final ScheduledFuture<?> keepAlive;

  /**
   * Messages kept alive together: the ones a bundle output, waiting for its commit, or the ones a
   * puller fetched and not yet output. Stamped with the earliest delivery among them and the
   * earliest time the server last heard about one of them, since those decide when the oldest
   * would expire.
   */
  static final class Batch {
    private final Set<String> replyTos = new LinkedHashSet<>();
    private long deliveredNanos;
    private long touchedNanos;

    /** Adds a message delivered (fetched) now. */
    void add(String replyTo) {
      add(replyTo, System.nanoTime());
    }

    /** Adds a message the server last heard about at {@code touchedNanos} ({@link System#nanoTime()}). */
    synchronized void add(String replyTo, long touchedNanos) {
      if (replyTos.isEmpty() || touchedNanos - this.touchedNanos < 0) {
        this.touchedNanos = touchedNanos;
      }
      if (replyTos.isEmpty() || touchedNanos - deliveredNanos < 0) {
        deliveredNanos = touchedNanos;
      }
      replyTos.add(replyTo);
    }

    /** Takes a message out (it moves to another batch, or was returned). */
    synchronized void remove(String replyTo) {
      replyTos.remove(replyTo);
    }

    /** When the server last heard about the batch's oldest message, as {@link System#nanoTime()}. */
    synchronized long touchedNanos() {
      return touchedNanos;
    }

    synchronized boolean isEmpty() {
      return replyTos.isEmpty();
    }

    synchronized int size() {
      return replyTos.size();
    }

    /** Until when the batch is kept alive: {@link #KEEP_ALIVE_LIMIT} after its first message's delivery. */
    synchronized Instant expiry() {
      long left = deliveredNanos + KEEP_ALIVE_LIMIT.toNanos() - System.nanoTime();
      return Instant.now().plus(org.joda.time.Duration.millis(Math.max(0, left / 1_000_000)));
    }

    synchronized List<String> replyTos() {
      return new ArrayList<>(replyTos);
    }
  }

  PendingAcks(NatsIO.ConnectionConfiguration configuration, Duration ackWait) {
    this.configuration = configuration;
    this.ackWaitNanos = ackWait.toNanos();
    // Every quarter ack wait, so that a batch is refreshed between half and three quarters of it.
    long period = Math.max(10, Math.min(1_000, ackWait.toMillis() / 4));
    this.keepAlive = TIMER.scheduleAtFixedRate(this::keepAlive, period, period, TimeUnit.MILLISECONDS);
  }

  /** A new batch, kept alive from its first message on. */
  Batch open() {
    Batch batch = new Batch();
    pending.add(batch);
    return batch;
  }

  /** Stops keeping {@code batch} alive without acknowledging it (it output nothing). */
  void discard(Batch batch) {
    pending.remove(batch);
  }

  /**
   * Acknowledges {@code batch} after its bundle was committed. Never throws: a failure is logged
   * and counted, and the messages come back after the ack wait.
   */
  void ack(Batch batch) {
    // Also when the keep-alive gave up on the batch or closed it: the runner committed it, so an ack
    // can only spare a redelivery.
    pending.remove(batch);
    List<String> replyTos = batch.replyTos();
    if (send(replyTos, ACK, true)) {
      ACKED.addAndGet(replyTos.size());
    }
  }

  /** Stops the keep-alive and returns every pending message to the server for redelivery now. */
  void close() {
    keepAlive.cancel(false);
    List<String> returned = new ArrayList<>();
    for (Batch batch : pending) {
      if (pending.remove(batch)) {
        returned.addAll(batch.replyTos());
      }
    }
    if (!returned.isEmpty()) {
      LOG.debug("Returning {} uncommitted message(s) to the consumer for redelivery", returned.size());
      send(returned, NAK, false);
    }
  }

  /** Messages waiting for their commit, for tests. */
  int pendingMessages() {
    int messages = 0;
    for (Batch batch : pending) {
      messages += batch.size();
    }
    return messages;
  }

  private void keepAlive() {
    try {
      long now = System.nanoTime();
      List<String> due = new ArrayList<>();
      for (Batch batch : pending) {
        synchronized (batch) {
          if (batch.replyTos.isEmpty() || now - batch.touchedNanos < ackWaitNanos / 2) {
            continue;
          }
          if (now - batch.deliveredNanos > KEEP_ALIVE_LIMIT.toNanos()) {
            pending.remove(batch);
            LOG.warn(
                "{} message(s) waited more than {} for the runner to commit them and are no longer kept alive; the server "
                    + "will redeliver them (marked by their delivered count). Is the runner finalizing bundles?",
                batch.replyTos.size(), KEEP_ALIVE_LIMIT);
            continue;
          }
          batch.touchedNanos = now;
          due.addAll(batch.replyTos);
        }
      }
      if (!due.isEmpty() && send(due, IN_PROGRESS, false)) {
        KEPT_ALIVE.addAndGet(due.size());
      }
    } catch (RuntimeException e) {
      // The timer is shared: one read's failure must not cancel it.
      LOG.warn("Keeping unacknowledged messages alive failed", e);
    }
  }

  /** Publishes {@code body} to each reply subject over the shared connection; false, logged and counted, on failure. */
  private boolean send(List<String> replyTos, byte[] body, boolean flush) {
    try (NatsConnections.Lease lease = NatsConnections.acquire(configuration)) {
      for (String replyTo : replyTos) {
        lease.connection().publish(replyTo, body);
      }
      if (flush) {
        lease.connection().flush(Duration.ofSeconds(5));
      }
      return true;
    } catch (Exception e) {
      if (e instanceof InterruptedException) {
        Thread.currentThread().interrupt();
      }
      FAILED.addAndGet(replyTos.size());
      ackFailures.inc(replyTos.size());
      LOG.warn(
          "Could not send {} to {} message(s) of a durable consumer at {}: {}. The server redelivers them after the ack "
              + "wait, marked by their delivered count.",
          new String(body, StandardCharsets.US_ASCII), replyTos.size(), configuration.displayServers(), e.toString());
      return false;
    }
  }
}
