package dev.natsio.beam;

import io.nats.client.Connection;
import java.time.Duration;
import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.TimeoutException;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * The DoFn behind {@link NatsIO#write()} without {@code withJetStream()}: publishes each message
 * on Core NATS. It outputs no results.
 *
 * <h2>Delivery</h2>
 *
 * <p>Core NATS is fire-and-forget: the server acknowledges nothing, and a message no subscriber
 * is listening for is dropped without a word. So this DoFn can only promise that the server
 * received the bundle's messages: {@code @FinishBundle} flushes the connection and waits for the
 * server's answer to a ping sent after them, and fails the bundle if it does not come within
 * {@link #FLUSH_TIMEOUT}. A failed bundle is retried by the runner and its messages sent again:
 * Core writes are at-least-once to the server and at-most-once to a subscriber that is not
 * connected at that moment.
 *
 * <p>Flushes are serialized per shared connection (see FLUSH_LOCKS); a flush covers
 * everything published on the connection before it, so waiting behind another bundle's flush costs
 * little.
 *
 * <h2>Refusals</h2>
 *
 * <p>A message jnats refuses before sending (a payload over the server's max_payload, a subject or
 * header NATS cannot carry) goes to the bad-record handler, or fails the bundle with a {@link
 * NatsIOException} naming the subject and the reason. While the connection is down, jnats buffers
 * publishes up to its reconnect buffer; when that is full the bundle fails.
 *
 * <h2>Connections</h2>
 *
 * <p>The connection is leased from {@link NatsConnections} in {@code @Setup} and released in
 * {@code @Teardown}, shared with every other reader and writer of the same configuration in the JVM.
 */
class WriteToCoreDoFn extends DoFn<NatsMessage, NatsPublishResult> {
  static final Duration FLUSH_TIMEOUT = Duration.ofSeconds(30);
  private static final String METRICS_NAMESPACE = "NatsIO";
  /**
   * One flush at a time per shared connection: each flush is a PING, and jnats takes more than
   * two unanswered PINGs (its maxPingsOut) for a stale connection and reconnects, dropping what it
   * had buffered. Many DoFn instances finishing bundles at once on one connection did exactly that.
   */
  private static final Map<Connection, Object> FLUSH_LOCKS = Collections.synchronizedMap(new WeakHashMap<>());

  private final NatsIO.ConnectionConfiguration configuration;
  private final SerializableFunction<NatsMessage, String> subjectFn;
  private final OutgoingMessages.Rejections rejections;

  private final Counter messagesWritten = Metrics.counter(METRICS_NAMESPACE, "messagesWritten");
  private final Counter bytesWritten = Metrics.counter(METRICS_NAMESPACE, "bytesWritten");
  private final Counter refused = Metrics.counter(METRICS_NAMESPACE, "messagesRefused");

  private transient NatsConnections.@Nullable Lease lease;
  private transient boolean publishedInBundle;

  WriteToCoreDoFn(
      NatsIO.ConnectionConfiguration configuration,
      SerializableFunction<NatsMessage, String> subjectFn,
      boolean routeBadRecords) {
    this.configuration = configuration;
    this.subjectFn = subjectFn;
    this.rejections = new OutgoingMessages.Rejections(routeBadRecords);
  }

  @Setup
  public void setup() {
    lease = NatsConnections.acquireFor(this, configuration);
  }

  @StartBundle
  public void startBundle() {
    publishedInBundle = false;
  }

  @ProcessElement
  public void processElement(@Element NatsMessage message, MultiOutputReceiver out) throws Exception {
    String subject = null;
    try {
      subject = OutgoingMessages.subjectOf(subjectFn, message);
      lease.connection().publish(OutgoingMessages.toNats(message, subject, false));
    } catch (OutgoingMessages.UserFunctionException | IllegalArgumentException e) {
      refused.inc();
      rejections.reject(out, message, e, OutgoingMessages.describeUnsendable(subject, e));
      return;
    } catch (IllegalStateException e) {
      throw new NatsIOException(
          "Could not publish to subject '" + subject + "' on NATS at " + configuration.displayServers() + ": "
              + e.getMessage() + ". The connection is down and its reconnect buffer is full, or it was closed.",
          e);
    }
    publishedInBundle = true;
    messagesWritten.inc();
    bytesWritten.inc(message.getPayload().length);
  }

  @FinishBundle
  public void finishBundle() {
    if (!publishedInBundle) {
      return;
    }
    Connection connection = lease.connection();
    try {
      synchronized (FLUSH_LOCKS.computeIfAbsent(connection, c -> new Object())) {
        connection.flush(FLUSH_TIMEOUT);
      }
    } catch (TimeoutException | IllegalStateException e) {
      throw new NatsIOException(
          "NATS at " + configuration.displayServers() + " did not confirm receiving this bundle's Core publishes within "
              + FLUSH_TIMEOUT.toSeconds() + " s (" + e.getMessage() + "). The runner will retry the bundle.",
          e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new NatsIOException("Interrupted while flushing Core publishes to NATS", e);
    }
  }

  @Teardown
  public void teardown() {
    if (lease != null) {
      lease.close();
      lease = null;
    }
  }
}
