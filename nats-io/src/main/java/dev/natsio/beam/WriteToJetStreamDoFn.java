package dev.natsio.beam;

import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.JetStreamApiException;
import io.nats.client.JetStreamManagement;
import io.nats.client.Message;
import io.nats.client.PublishOptions;
import io.nats.client.api.PublishAck;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The DoFn behind {@link NatsIO#write()} with {@link NatsIO.Write#withJetStream()}: publishes each
 * message to JetStream and outputs what the server acknowledged as a {@link NatsPublishResult}.
 *
 * <h2>In-flight window</h2>
 *
 * <p>Messages go out with {@code publishAsync}, which has no bound of its own. Each instance keeps
 * at most {@code maxInFlight} publishes unacknowledged: when the window is full it waits for the
 * oldest. Acknowledgements already in are settled after every publish, so the window only fills
 * when the server is slower than the pipeline. Async publishing with thousands in flight is what
 * makes JetStream writes fast (tens of thousands of messages a second, against a few thousand
 * with one synchronous round trip per message).
 *
 * <h2>Bundles</h2>
 *
 * <p>{@code @FinishBundle} waits for every acknowledgement of the bundle, so a bundle never
 * commits with a publish whose outcome is unknown: when the runner moves past a bundle, every
 * message in it is stored (or was reported as refused). Results and refused messages are output
 * there too, each in its own element's window with its element's timestamp.
 *
 * <h2>Retries</h2>
 *
 * <p>A publish not acknowledged within {@link #PUBLISH_TIMEOUT_MILLIS}, failed by jnats, or that
 * cannot even be queued because the connection is down, has an unknown outcome: the server may
 * have stored it. The window is then drained, and every publish that failed this way is sent again,
 * in its original order and with the same {@code Nats-Msg-Id}, after a backoff that grows from
 * {@link #FIRST_BACKOFF_MILLIS} to {@link #MAX_BACKOFF_MILLIS} and once the connection is back.
 * With a message id the stream stores each message once whatever the number of attempts; without
 * one, a retried message whose first attempt was stored is stored twice. After {@link
 * #MAX_ATTEMPTS} attempts the bundle fails, and the runner's own retry takes over.
 *
 * <h2>Refusals</h2>
 *
 * <p>A publish the server (or jnats, before sending) refuses is not retried: a payload over the
 * server's max_payload, a subject no stream captures, a stream limit with the discard-new policy,
 * an expected stream that does not match. It goes to the bad-record handler with the subject and
 * the server's reason, or fails the bundle with a {@link NatsIOException} saying the same. A 503
 * "no responders" answer is ambiguous (no stream captures the subject, or JetStream is not up yet
 * after a restart), so the stream names are looked up before calling it a refusal.
 *
 * <h2>Order</h2>
 *
 * <p>Within a bundle, messages are stored in the order they were processed, except that retried
 * messages land after the ones that went through the first time. Across bundles and workers there
 * is no order, as everywhere in Beam.
 *
 * <h2>Connections</h2>
 *
 * <p>The connection is leased from {@link NatsConnections} in {@code @Setup} and released in
 * {@code @Teardown}, so every instance in a worker JVM shares one connection per configuration.
 */
class WriteToJetStreamDoFn extends DoFn<NatsMessage, NatsPublishResult> {
  private static final Logger LOG = LoggerFactory.getLogger(WriteToJetStreamDoFn.class);
  static final int MAX_ATTEMPTS = 10;
  static final long FIRST_BACKOFF_MILLIS = 250;
  static final long MAX_BACKOFF_MILLIS = 5_000;
  /**
   * How long a publish may go unacknowledged before it is sent again. jnats times requests out by
   * itself, but only on a cleanup timer that runs every 5 s: its publishes fail 5 to 10 s late.
   */
  static final long PUBLISH_TIMEOUT_MILLIS = 5_000;
  private static final long RECONNECT_WAIT_MILLIS = 10_000;
  private static final long STREAM_LOOKUP_TTL_MILLIS = 1_000;
  /** Server errors about the server, not the message: retried, and never sent to the error handler. */
  private static final Set<Integer> TRANSIENT_API_ERRORS = Set.of(
      JetStreamMetadata.TEMPORARILY_UNAVAILABLE, // a cluster without a leader, for now
      10023); // insufficient resources (the server's storage or memory limits are reached)
  private static final String METRICS_NAMESPACE = "NatsIO";

  private final NatsIO.ConnectionConfiguration configuration;
  private final SerializableFunction<NatsMessage, String> subjectFn;
  private final @Nullable SerializableFunction<NatsMessage, String> messageIdFn;
  private final @Nullable String expectedStream;
  private final int maxInFlight;
  private final OutgoingMessages.Rejections rejections;

  private final Counter messagesWritten = Metrics.counter(METRICS_NAMESPACE, "messagesWritten");
  private final Counter bytesWritten = Metrics.counter(METRICS_NAMESPACE, "bytesWritten");
  private final Counter duplicates = Metrics.counter(METRICS_NAMESPACE, "duplicatesIgnoredByServer");
  private final Counter retries = Metrics.counter(METRICS_NAMESPACE, "publishRetries");
  private final Counter refused = Metrics.counter(METRICS_NAMESPACE, "messagesRefused");

  private transient NatsConnections.@Nullable Lease lease;
  private transient @Nullable JetStream jetStream;
  private transient @Nullable JetStreamManagement management;
  private transient @Nullable PublishOptions sharedOptions;
  private transient ArrayDeque<Pending> inFlight;
  private transient List<Settled> acknowledged;
  private transient List<Refusal> refusals;
  private transient Map<String, StreamLookup> streamLookups;

  WriteToJetStreamDoFn(
      NatsIO.ConnectionConfiguration configuration,
      SerializableFunction<NatsMessage, String> subjectFn,
      @Nullable SerializableFunction<NatsMessage, String> messageIdFn,
      @Nullable String expectedStream,
      int maxInFlight,
      boolean routeBadRecords) {
    this.configuration = configuration;
    this.subjectFn = subjectFn;
    this.messageIdFn = messageIdFn;
    this.expectedStream = expectedStream;
    this.maxInFlight = maxInFlight;
    this.rejections = new OutgoingMessages.Rejections(routeBadRecords);
  }

  @Setup
  public void setup() throws IOException {
    lease = NatsConnections.acquireFor(this, configuration);
    jetStream = lease.connection().jetStream(configuration.jetStreamOptions());
    management = lease.connection().jetStreamManagement(configuration.jetStreamOptions());
    sharedOptions = expectedStream == null ? null : PublishOptions.builder().expectedStream(expectedStream).build();
    streamLookups = new HashMap<>();
  }

  @StartBundle
  public void startBundle() {
    inFlight = new ArrayDeque<>();
    acknowledged = new ArrayList<>();
    refusals = new ArrayList<>();
  }

  @ProcessElement
  public void processElement(@Element NatsMessage message, @Timestamp Instant timestamp, BoundedWindow window) {
    Pending pending;
    String subject = null;
    try {
      subject = OutgoingMessages.subjectOf(subjectFn, message);
      String messageId = messageIdFn == null
          ? OutgoingMessages.ownMessageId(message)
          : OutgoingMessages.apply(messageIdFn, message, "message id");
      pending = new Pending(message, subject, messageId, timestamp, window,
          OutgoingMessages.toNats(message, subject, messageIdFn != null), optionsFor(messageId));
    } catch (OutgoingMessages.UserFunctionException | IllegalArgumentException e) {
      refuse(new Refusal(message, timestamp, window, e, OutgoingMessages.describeUnsendable(subject, e)));
      return;
    }
    publish(pending);
    if (pending.future == null) {
      return; // Refused before it was sent.
    }
    inFlight.addLast(pending);
    while (!inFlight.isEmpty() && (inFlight.size() >= maxInFlight || inFlight.peekFirst().future.isDone())) {
      settleOldest();
    }
  }

  @FinishBundle
  public void finishBundle(FinishBundleContext context) throws Exception {
    retryUntilSettled(drainInFlight());
    for (Refusal refusal : refusals) {
      rejections.reject(context, refusal.message, refusal.cause, refusal.description, refusal.window);
    }
    for (Settled settled : acknowledged) {
      context.output(settled.result, settled.timestamp, settled.window);
    }
    inFlight = null;
    acknowledged = null;
    refusals = null;
  }

  @Teardown
  public void teardown() {
    if (lease != null) {
      lease.close();
      lease = null;
      jetStream = null;
      management = null;
    }
  }

  // ---- Publishing and settling -----------------------------------------------------------------

  private @Nullable PublishOptions optionsFor(@Nullable String messageId) {
    if (messageIdFn == null || messageId == null) {
      // A message id of the message's own travels in its headers.
      return sharedOptions;
    }
    PublishOptions.Builder options = PublishOptions.builder().messageId(messageId);
    if (expectedStream != null) {
      options.expectedStream(expectedStream);
    }
    return options.build();
  }

  /** Sends (or re-sends) a message; leaves {@code future} null if jnats refused it outright. */
  private void publish(Pending pending) {
    pending.attempts++;
    pending.deadlineNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(PUBLISH_TIMEOUT_MILLIS);
    try {
      pending.future = pending.options == null
          ? jetStream.publishAsync(pending.outgoing)
          : jetStream.publishAsync(pending.outgoing, pending.options);
    } catch (IllegalArgumentException e) {
      // Over max_payload, or a subject or header NATS cannot carry: no attempt would succeed.
      pending.future = null;
      refuse(new Refusal(pending.message, pending.timestamp, pending.window, e,
          OutgoingMessages.describeUnsendable(pending.subject, e)));
    } catch (IllegalStateException e) {
      // The connection is down and its reconnect buffer full (or closed): retry like a timeout.
      pending.future = CompletableFuture.failedFuture(e);
    }
  }

  private void settleOldest() {
    Pending oldest = inFlight.pollFirst();
    if (!settle(oldest)) {
      List<Pending> failed = new ArrayList<>();
      failed.add(oldest);
      failed.addAll(drainInFlight());
      retryUntilSettled(failed);
    }
  }

  /** Waits for every publish in flight; returns those whose outcome is unknown, in order. */
  private List<Pending> drainInFlight() {
    List<Pending> failed = new ArrayList<>();
    while (!inFlight.isEmpty()) {
      Pending pending = inFlight.pollFirst();
      if (!settle(pending)) {
        failed.add(pending);
      }
    }
    return failed;
  }

  private void retryUntilSettled(List<Pending> failed) {
    int round = 0;
    while (!failed.isEmpty()) {
      round++;
      Pending first = failed.get(0);
      if (failed.stream().mapToInt(p -> p.attempts).max().getAsInt() >= MAX_ATTEMPTS) {
        throw new NatsIOException(
            "Gave up publishing " + failed.size() + " message(s) to JetStream at " + configuration.displayServers()
                + " after " + first.attempts + " attempts each; the first, for subject '" + first.subject
                + "', last failed with: " + describe(first.lastError)
                + ". The server may be down or overloaded. The runner will retry the bundle"
                + (messageIdFn == null ? "; set withMessageIdFn(...) so that retry cannot store a message twice." : "."),
            first.lastError instanceof Exception ? (Exception) first.lastError : null);
      }
      long backoff = Math.min(MAX_BACKOFF_MILLIS, FIRST_BACKOFF_MILLIS << Math.min(round - 1, 10));
      LOG.warn("Retrying {} JetStream publish(es) to {} in {} ms (attempt {} of {}); first failure: {}",
          failed.size(), configuration.displayServers(), backoff, first.attempts + 1, MAX_ATTEMPTS,
          describe(first.lastError));
      sleep(backoff);
      awaitConnected();
      retries.inc(failed.size());
      for (Pending pending : failed) {
        publish(pending);
        if (pending.future != null) {
          inFlight.addLast(pending);
        }
      }
      failed = drainInFlight();
    }
  }

  /**
   * Waits for one publish to complete. Returns true when it is settled (acknowledged, or refused
   * and reported) and false when its outcome is unknown and it must be sent again.
   */
  private boolean settle(Pending pending) {
    Throwable error;
    try {
      long remaining = Math.max(0, pending.deadlineNanos - System.nanoTime());
      PublishAck ack = pending.future.get(remaining, TimeUnit.NANOSECONDS);
      acknowledge(pending, ack);
      return true;
    } catch (ExecutionException e) {
      error = unwrap(e.getCause());
    } catch (CancellationException e) {
      error = e;
    } catch (TimeoutException e) {
      pending.future.cancel(false);
      error = new TimeoutException("no acknowledgement within " + PUBLISH_TIMEOUT_MILLIS + " ms");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new NatsIOException("Interrupted while waiting for JetStream to acknowledge a publish", e);
    }
    pending.lastError = error;
    String refusal = refusalReason(pending.subject, error);
    if (refusal == null) {
      return false;
    }
    refuse(new Refusal(pending.message, pending.timestamp, pending.window,
        error instanceof Exception ? (Exception) error : new RuntimeException(error),
        "JetStream refused the message for subject '" + pending.subject + "': " + refusal));
    return true;
  }

  private void acknowledge(Pending pending, PublishAck ack) {
    if (ack.isDuplicate()) {
      duplicates.inc();
    } else {
      messagesWritten.inc();
      bytesWritten.inc(pending.message.getPayload().length);
    }
    acknowledged.add(new Settled(
        NatsPublishResult.create(pending.subject, ack.getStream(), ack.getSeqno(), ack.isDuplicate(), pending.messageId),
        pending.timestamp, pending.window));
  }

  private void refuse(Refusal refusal) {
    refused.inc();
    if (!rejections.routed()) {
      throw OutgoingMessages.Rejections.failure(refusal.description, refusal.cause);
    }
    refusals.add(refusal);
  }

  /** Why the server refused the publish for good, or null when trying again may succeed. */
  private @Nullable String refusalReason(String subject, Throwable error) {
    if (error instanceof JetStreamApiException) {
      JetStreamApiException api = (JetStreamApiException) error;
      return TRANSIENT_API_ERRORS.contains(api.getApiErrorCode()) ? null : api.getMessage();
    }
    String message = String.valueOf(error.getMessage());
    if (error instanceof IOException && message.contains("503")) {
      return noStreamCaptures(subject)
          ? "no stream captures this subject (the server answered 503 no responders). Create a stream whose subjects"
              + " include it, or change withSubject / withSubjectFn"
          : null;
    }
    if (error instanceof IOException && message.startsWith("Expected ack from stream")) {
      return message;
    }
    return null;
  }

  /** True only when JetStream answers that no stream's subjects match {@code subject}. */
  private boolean noStreamCaptures(String subject) {
    long now = System.currentTimeMillis();
    StreamLookup lookup = streamLookups.get(subject);
    if (lookup == null || now - lookup.atMillis > STREAM_LOOKUP_TTL_MILLIS) {
      boolean none;
      try {
        none = management.getStreamNames(subject).isEmpty();
      } catch (IOException | JetStreamApiException | RuntimeException e) {
        none = false; // JetStream is not answering: treat the 503 as a passing outage.
      }
      lookup = new StreamLookup(none, now);
      streamLookups.put(subject, lookup);
    }
    return lookup.noStream;
  }

  private void awaitConnected() {
    Connection connection = lease.connection();
    long deadline = System.currentTimeMillis() + RECONNECT_WAIT_MILLIS;
    while (connection.getStatus() != Connection.Status.CONNECTED && System.currentTimeMillis() < deadline) {
      sleep(50);
    }
  }

  private static Throwable unwrap(Throwable error) {
    Throwable current = error;
    while (current.getCause() != null
        && (current instanceof CompletionException || current.getClass() == RuntimeException.class)) {
      current = current.getCause();
    }
    return current;
  }

  private static String describe(@Nullable Throwable error) {
    return error == null ? "(none)" : error.getClass().getSimpleName() + ": " + error.getMessage();
  }

  private static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new NatsIOException("Interrupted while waiting to retry JetStream publishes", e);
    }
  }

  // ---- State -----------------------------------------------------------------------------------

  /** A message on its way: kept until acknowledged so it can be sent again unchanged. */
  private static final class Pending {
    final NatsMessage message;
    final String subject;
    final @Nullable String messageId;
    final Instant timestamp;
    final BoundedWindow window;
    final Message outgoing;
    final @Nullable PublishOptions options;
    @Nullable CompletableFuture<PublishAck> future;
    int attempts;
    long deadlineNanos;
    @Nullable Throwable lastError;

    Pending(NatsMessage message, String subject, @Nullable String messageId, Instant timestamp, BoundedWindow window,
        Message outgoing, @Nullable PublishOptions options) {
      this.message = message;
      this.subject = subject;
      this.messageId = messageId;
      this.timestamp = timestamp;
      this.window = window;
      this.outgoing = outgoing;
      this.options = options;
    }
  }

  /** An acknowledged publish, output when the bundle finishes. */
  private static final class Settled {
    final NatsPublishResult result;
    final Instant timestamp;
    final BoundedWindow window;

    Settled(NatsPublishResult result, Instant timestamp, BoundedWindow window) {
      this.result = result;
      this.timestamp = timestamp;
      this.window = window;
    }
  }

  /** A message NATS will not take, routed to the bad-record handler when the bundle finishes. */
  private static final class Refusal {
    final NatsMessage message;
    final Instant timestamp;
    final BoundedWindow window;
    final Exception cause;
    final String description;

    Refusal(NatsMessage message, Instant timestamp, BoundedWindow window, Exception cause, String description) {
      this.message = message;
      this.timestamp = timestamp;
      this.window = window;
      this.cause = cause;
      this.description = description;
    }
  }

  private static final class StreamLookup {
    final boolean noStream;
    final long atMillis;

    StreamLookup(boolean noStream, long atMillis) {
      this.noStream = noStream;
      this.atMillis = atMillis;
    }
  }
}
