package dev.natsio.beam;

import io.nats.client.Message;
import io.nats.client.api.MessageInfo;
import io.nats.client.api.StreamState;
import io.nats.client.impl.Headers;
import io.nats.client.impl.NatsJetStreamMetaData;
import java.io.IOException;
import java.time.ZonedDateTime;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The steps of a position-tracked JetStream read of one stream, shared by both forms the read
 * takes: the splittable {@link ReadFromJetStreamDoFn} and the {@link JetStreamUnboundedReader} of
 * the Flink source. The forms keep only their position state (a restriction, a checkpoint mark)
 * around these steps, so a fix here lands in both.
 *
 * <h3>Message to element</h3>
 *
 * <p>{@link #toElement} turns a delivered message into the {@link NatsMessage} the read outputs,
 * with its event timestamp ({@link NatsIO.TimestampPolicy}) and how far it lets the watermark go.
 *
 * <h3>Caught up and end of range</h3>
 *
 * <p>{@link #lookAhead} asks the server for the next matching sequence at or after a position;
 * its answer proves that a bounded range holds nothing more, or that a live read has read
 * everything stored, so its watermark may advance ({@link #idleWatermark}). It reads "now" before
 * asking: a message stored after the answer was given is stamped later than that.
 *
 * <h3>Failures</h3>
 *
 * <p>A failed request is either a refusal or an outage. Refusals (the stream was deleted, the
 * user lacks permission for the request's API subject, any other JetStream API error) fail the
 * read with a {@link NatsIOException} naming the stream, and the permission where that is the
 * cause: waiting would not help. An outage (the server is away, reconnecting or has no JetStream
 * leader: the request timed out without a permission error, or JetStream answered that it is
 * temporarily unavailable) is retried after {@link
 * #REOPEN_BACKOFF_MILLIS}, logged at WARN at most every {@link #WARN_INTERVAL_MILLIS} and counted
 * in {@code NatsIO/probeFailures/<stream>}. jnats reports a publish permission violation only to
 * the connection's error listener and lets the request time out, so the listener NatsIO installs
 * ({@link NatsConnections.ConnectionErrors}) keeps the denied subjects for {@link #refusal} to see.
 *
 * <h3>Off the task thread</h3>
 *
 * <p>Runners call both forms on their task threads, which a request must not hold for its timeout
 * while the server is away or connected without a JetStream leader. So the forms never ask the
 * server themselves once reading: {@link #refreshStatsInBackground} and {@link #lookAhead} start
 * the request on a shared daemon pool ({@link #REQUESTS}) and return at once with the latest answer
 * they have, and {@link #throwIfRefused} throws a refusal a background request met. One look-ahead
 * per stream runs at a time, each position asked at most every {@link #LOOK_AHEAD_INTERVAL_MILLIS};
 * one statistics refresh at a time, at most every {@link #STATS_TTL_MILLIS}.
 *
 * <h3>Stream statistics</h3>
 *
 * <p>The stream's last sequence, message count and bytes, refreshed while the read runs at most
 * every {@link #STATS_TTL_MILLIS} ({@link #refreshStatsIfDue}) and kept in a volatile field: sizes,
 * progress, range-end estimates and backlog gauges, which runners ask for from other threads,
 * read that value and never call the server themselves (as KafkaIO's offset estimator does).
 */
final class JetStreamReadCore {
  private static final Logger LOG = LoggerFactory.getLogger(JetStreamReadCore.class);
  /** Wait before a new consumer after an outage, or before the next attempt to open one. */
  static final long REOPEN_BACKOFF_MILLIS = 1_000;
  /** How old the stream's statistics may get while the read loop runs. */
  static final long STATS_TTL_MILLIS = 1_000;
  /** Transient probe failures of one stream are logged at most this often. */
  static final long WARN_INTERVAL_MILLIS = 60_000;
  /** How often one position is asked what lies after it while the read finds nothing new. */
  static final long LOOK_AHEAD_INTERVAL_MILLIS = 250;
  /** Runs the reads' requests to the server, so that none blocks a runner's task thread. */
  static final ExecutorService REQUESTS = Executors.newCachedThreadPool(runnable -> {
    Thread thread = new Thread(runnable, "natsio-read-requests");
    thread.setDaemon(true);
    return thread;
  });

  private final NatsIO.ReadSourceDescriptors spec;
  private final String stream;
  private final JetStreamReadMetrics metrics;
  private final Counter probeFailures;
  private volatile StreamStats stats = StreamStats.UNKNOWN;
  private volatile long lastWarnMillis;
  private final AtomicBoolean statsRefreshing = new AtomicBoolean();
  private final AtomicBoolean lookingAhead = new AtomicBoolean();
  /** The latest look-ahead per position; entries behind a newer position of the same filters go. */
  private final Map<LookAheadKey, LookAhead> lookAheads = new ConcurrentHashMap<>();
  private volatile @Nullable RuntimeException refusal;
  /** Failures met on background threads, where metrics do not count, until the task thread reports them. */
  private final AtomicLong uncountedProbeFailures = new AtomicLong();
  private final AtomicLong requestsStarted = new AtomicLong();
  /** Consumers being opened in the background, by the position they start at. */
  private final Map<JetStreamReader.Position, CompletableFuture<Void>> opening = new ConcurrentHashMap<>();

  JetStreamReadCore(NatsIO.ReadSourceDescriptors spec, String stream) {
    this.spec = spec;
    this.stream = stream;
    this.metrics = JetStreamReadMetrics.forStream(stream);
    this.probeFailures = Metrics.counter(JetStreamReadMetrics.NAMESPACE, "probeFailures/" + stream);
  }

  String stream() {
    return stream;
  }

  JetStreamReadMetrics metrics() {
    return metrics;
  }

  // ---- Message to element ----------------------------------------------------------------------

  /** A delivered message as the read outputs it. */
  static final class Element {
    final NatsMessage message;
    final long sequence;
    final Instant publishTime;
    /** The event timestamp; null when the timestamp function failed (see {@link #timestampError}). */
    final @Nullable Instant timestamp;
    final @Nullable RuntimeException timestampError;

    Element(NatsMessage message, long sequence, Instant publishTime, @Nullable Instant timestamp, @Nullable RuntimeException error) {
      this.message = message;
      this.sequence = sequence;
      this.publishTime = publishTime;
      this.timestamp = timestamp;
      this.timestampError = error;
    }
  }

  /**
   * {@code message} as an element with its event timestamp. A timestamp function that throws does
   * not throw here: the element carries the error, for the read to fail or route the message to
   * the bad-record handler.
   */
  Element toElement(Message message) {
    NatsJetStreamMetaData meta = message.metaData();
    long sequence = meta.streamSequence();
    Instant publishTime = toInstant(meta.timestamp());
    NatsMessage output = NatsMessage.of(message.getSubject(), message.getData(), headersOf(message), stream, sequence, publishTime);
    try {
      return new Element(output, sequence, publishTime, spec.timestampOf(output, publishTime), null);
    } catch (RuntimeException e) {
      return new Element(output, sequence, publishTime, null, e);
    }
  }

  /** The error a failed timestamp function gives when no bad-record handler takes the message. */
  NatsIOException timestampFailure(Element element) {
    return new NatsIOException(
        "withTimestampFn failed on the message at sequence " + element.sequence + " of stream '" + stream + "': "
            + element.timestampError + ". Fix the function, or give the read withBadRecordErrorHandler(...) to set such "
            + "messages aside.", element.timestampError);
  }

  /** How far an element with event time {@code timestamp} lets the watermark go. */
  Instant watermarkAfter(Instant timestamp) {
    return spec.watermarkAfter(timestamp);
  }

  /**
   * Where the watermark of a read that was caught up at {@code caughtUpAt} may go: now less the
   * idle delay for publish times, now less the allowed delay for a timestamp function (a message
   * stored later may carry an event time up to that much older). Null with processing time, whose
   * watermark is wall time anyway.
   */
  @Nullable Instant idleWatermark(Instant caughtUpAt) {
    switch (spec.getTimestampPolicy()) {
      case PUBLISH_TIME:
        return caughtUpAt.minus(spec.getIdleWatermarkDelay());
      case TIMESTAMP_FN:
        return caughtUpAt.minus(spec.getMaxDelay());
      default:
        return null;
    }
  }

  // ---- Caught up and end of range --------------------------------------------------------------

  private void transientFailure(JetStreamMetadata metadata, String what, IOException e) {
    NatsIOException refusal = metadata.refusal(stream, e);
    if (refusal != null) {
      throw refusal;
    }
    outage(what, e.getMessage(), e);
  }

  /** Counts a request the server did not answer, and warns at most every {@link #WARN_INTERVAL_MILLIS}. */
  private void outage(String what, @Nullable String problem, Exception e) {
    uncountedProbeFailures.incrementAndGet();
    long now = System.currentTimeMillis();
    if (now - lastWarnMillis >= WARN_INTERVAL_MILLIS) {
      lastWarnMillis = now;
      LOG.warn("Could not {} in JetStream stream '{}' on {} ({}); retrying. Further failures are counted in "
              + "NatsIO/probeFailures/{} and logged at most once a minute.",
          what, stream, spec.getConnectionConfiguration().displayServers(), problem, stream);
    } else {
      LOG.debug("Could not {} in JetStream stream '{}'; retrying", what, stream, e);
    }
  }

  /**
   * A refusal that a restart of the job would meet again (the stream is gone, a permission is
   * missing). On Flink, whose streaming jobs with checkpointing restart without end by default, its
   * cause chain holds Flink's {@code SuppressRestartsException}, so the job fails once with this
   * message instead of restarting in a loop; elsewhere it is a plain {@link NatsIOException}.
   */
  static NatsIOException permanent(String message, @Nullable Throwable cause) {
    // Flink ships a task's failure to its job manager serialized, and looks for the marker in what
    // arrives; jnats's API exceptions do not serialize, so the chain carries their text instead.
    Throwable root = new IllegalStateException(cause == null ? message : cause.toString());
    if (cause != null) {
      root.setStackTrace(cause.getStackTrace());
    }
    try {
      Class<?> suppressRestarts =
          Class.forName("org.apache.flink.runtime.execution.SuppressRestartsException", false, JetStreamReadCore.class.getClassLoader());
      return new NatsIOException(message, (Throwable) suppressRestarts.getConstructor(Throwable.class).newInstance(root));
    } catch (ReflectiveOperationException | LinkageError | ClassCastException e) {
      return cause == null ? new NatsIOException(message) : new NatsIOException(message, cause);
    }
  }

  // ---- Off the task thread ---------------------------------------------------------------------

  /** What the server held after a position: the next matching message, if any, and when it was asked. */
  static final class LookAhead {
    /** Read before asking: a message stored after the answer is stamped later than this. */
    final Instant askedAt;
    final long startedAtMillis;
    /** Null when nothing matching was stored at or after the position. */
    final @Nullable Long nextSequence;
    final @Nullable Instant nextPublishTime;

    LookAhead(Instant askedAt, long startedAtMillis, @Nullable MessageInfo next) {
      this.askedAt = askedAt;
      this.startedAtMillis = startedAtMillis;
      this.nextSequence = next == null ? null : next.getSeq();
      this.nextPublishTime = next == null ? null : toInstant(next.getTime());
    }

    /** True when the server held nothing matching at or after the position. */
    boolean caughtUp() {
      return nextSequence == null;
    }
  }

  private static final class LookAheadKey {
    final List<String> filters;
    final long position;

    LookAheadKey(List<String> filters, long position) {
      this.filters = filters;
      this.position = position;
    }

    @Override
    public boolean equals(@Nullable Object other) {
      return other instanceof LookAheadKey && ((LookAheadKey) other).position == position && ((LookAheadKey) other).filters.equals(filters);
    }

    @Override
    public int hashCode() {
      return Long.hashCode(position) * 31 + filters.hashCode();
    }
  }

  /**
   * On the runner's task thread, where metrics count: adds the transient failures background
   * requests met since the last call to {@code NatsIO/probeFailures/<stream>}, and throws a refusal
   * one met (e.g. the stream was deleted).
   */
  void collectBackgroundResults() {
    long failures = uncountedProbeFailures.getAndSet(0);
    if (failures > 0) {
      probeFailures.inc(failures);
    }
    RuntimeException refused = refusal;
    if (refused != null) {
      throw refused;
    }
  }

  /** Background requests started so far (for tests). */
  long requestsStarted() {
    return requestsStarted.get();
  }

  /** Background requests started and not yet answered or failed (for tests). */
  int requestsInFlight() {
    return (statsRefreshing.get() ? 1 : 0) + (lookingAhead.get() ? 1 : 0);
  }

  /**
   * Starts a refresh of the stream's statistics on a background thread when due and none runs;
   * never waits. Callers read the result through {@link #stats()}.
   */
  void refreshStatsInBackground(Supplier<JetStreamMetadata> metadata) {
    if (System.currentTimeMillis() - stats.fetchedAtMillis < STATS_TTL_MILLIS || !statsRefreshing.compareAndSet(false, true)) {
      return;
    }
    inBackground(statsRefreshing, () -> refreshStatsIfDue(metadata.get()));
  }

  /**
   * The latest answer to "what is stored at or after {@code position} on {@code filters}", or null
   * before the first; starts a new request on a background thread when the latest is older than
   * {@link #LOOK_AHEAD_INTERVAL_MILLIS} and no other look-ahead of this stream runs. Never waits.
   */
  @Nullable LookAhead lookAhead(Supplier<JetStreamMetadata> metadata, List<String> filters, long position) {
    LookAheadKey key = new LookAheadKey(filters, position);
    LookAhead latest = lookAheads.get(key);
    long now = System.currentTimeMillis();
    if ((latest == null || now - latest.startedAtMillis >= LOOK_AHEAD_INTERVAL_MILLIS) && lookingAhead.compareAndSet(false, true)) {
      // Positions only move forward: answers for earlier positions of the same filters are spent.
      lookAheads.keySet().removeIf(k -> k.filters.equals(filters) && k.position < position);
      inBackground(lookingAhead, () -> {
        JetStreamMetadata connected = metadata.get();
        if (!connected.isConnected()) {
          return; // Reconnecting: a request would only wait out its timeout.
        }
        Instant askedAt = Instant.now();
        try {
          lookAheads.put(key, new LookAhead(askedAt, now, connected.nextMessage(stream, position, filters)));
        } catch (IOException e) {
          transientFailure(connected, "look at what follows its position", e);
        }
      });
    }
    return latest;
  }

  /**
   * A reader at {@code position}: the one parked there, or a new one opened on a background thread
   * and parked there for {@code owner}, waited for at most {@code wait}. Null when it is not open
   * yet: still opening (the next call waits for it again), or the server did not answer (counted,
   * and opened again by the next call). A refusal throws.
   */
  @Nullable JetStreamReader takeOrOpen(JetStreamReader.Position position, int batchSize, Object owner, java.time.Duration wait)
      throws InterruptedException {
    JetStreamReader parked = JetStreamReader.PARKED.take(position);
    if (parked != null) {
      return parked;
    }
    CompletableFuture<Void> open = opening.computeIfAbsent(position, at -> {
      requestsStarted.incrementAndGet();
      return CompletableFuture.runAsync(() -> {
        try {
          JetStreamReader reader =
              JetStreamReader.open(at.connection, at.stream, at.filterSubjects, at.nextSequence, batchSize);
          JetStreamReader.PARKED.park(at, reader, owner);
        } catch (RuntimeException e) {
          keepRefusal(e, () -> outage("open a consumer", e.getMessage(), e));
        }
      }, REQUESTS);
    });
    try {
      open.get(wait.toMillis(), TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      return null; // Still opening: the server may have no JetStream leader. The runner's thread moves on.
    } catch (ExecutionException e) {
      throw new IllegalStateException(e.getCause()); // The task catches everything itself.
    }
    opening.remove(position, open);
    collectBackgroundResults();
    return JetStreamReader.PARKED.take(position);
  }

  private void inBackground(AtomicBoolean running, Runnable request) {
    requestsStarted.incrementAndGet();
    try {
      CompletableFuture.runAsync(() -> {
        try {
          request.run();
        } catch (RuntimeException e) {
          keepRefusal(e, () -> {}); // An outage: the next request tries again.
        } finally {
          running.set(false);
        }
      }, REQUESTS);
    } catch (RuntimeException e) {
      running.set(false);
      throw e;
    }
  }

  /**
   * A background request's failure: a refusal is kept for the task thread ({@link
   * #collectBackgroundResults}); an outage (see {@link #isOutage}) is handed to {@code onOutage}.
   */
  private void keepRefusal(RuntimeException failure, Runnable onOutage) {
    if (failure instanceof NatsIOException && isOutage((NatsIOException) failure)) {
      onOutage.run();
    } else {
      refusal = failure;
    }
  }

  // ---- Opening ---------------------------------------------------------------------------------

  /**
   * True when {@code e}, thrown while opening a consumer or asking about the stream, means the
   * server is away for now (wait and retry); false for a refusal, which fails the read.
   */
  static boolean isOutage(NatsIOException e) {
    return e.getCause() instanceof IOException || JetStreamMetadata.isTemporarilyUnavailable(e.getCause());
  }

  // ---- Stream statistics -----------------------------------------------------------------------

  /** The latest statistics the read loop fetched; never calls the server, from any thread. */
  StreamStats stats() {
    return stats;
  }

  void recordStats(StreamState state) {
    stats = new StreamStats(state.getLastSequence(), state.getMsgCount(), state.getByteCount(), System.currentTimeMillis());
  }

  /**
   * Fetches the stream's state when the last is older than {@link #STATS_TTL_MILLIS} (not while
   * disconnected). A missing stream, or a refusal, throws; other failures keep the last known
   * state. Reports nothing: metrics count only on the runner's threads, so callers report the
   * backlog ({@link #backlogMessages}) themselves.
   */
  void refreshStatsIfDue(JetStreamMetadata metadata) {
    if (System.currentTimeMillis() - stats.fetchedAtMillis < STATS_TTL_MILLIS || !metadata.isConnected()) {
      return;
    }
    try {
      recordStats(metadata.streamInfo(stream).getStreamState());
    } catch (NatsIOException e) {
      if (!isOutage(e)) {
        throw e; // The stream was deleted, or the user may not look at it.
      }
      stats = stats.retriedAt(System.currentTimeMillis());
      LOG.debug("Could not refresh the state of stream {}; using the last known", stream, e);
    }
  }

  /** Messages stored after {@code nextSequence}, by the last statistics fetched. */
  long backlogMessages(long nextSequence) {
    return Math.max(0, stats.lastSequence + 1 - nextSequence);
  }

  // ---- Conversions -----------------------------------------------------------------------------

  static Instant toInstant(ZonedDateTime time) {
    return Instant.ofEpochMilli(time.toInstant().toEpochMilli());
  }

  static Map<String, List<String>> headersOf(Message message) {
    if (!message.hasHeaders()) {
      return Collections.emptyMap();
    }
    Headers headers = message.getHeaders();
    Map<String, List<String>> copy = new TreeMap<>();
    for (String key : headers.keySet()) {
      copy.put(key, headers.get(key));
    }
    return copy;
  }

  /** The stream's size and last sequence as last fetched; immutable, so any thread may read it. */
  static final class StreamStats {
    /** Before the first successful look-up. */
    static final StreamStats UNKNOWN = new StreamStats(false, 0, 0, 0, 0);

    final boolean known;
    final long lastSequence;
    final long messages;
    final long bytes;
    final long fetchedAtMillis;

    StreamStats(long lastSequence, long messages, long bytes, long fetchedAtMillis) {
      this(true, lastSequence, messages, bytes, fetchedAtMillis);
    }

    private StreamStats(boolean known, long lastSequence, long messages, long bytes, long fetchedAtMillis) {
      this.known = known;
      this.lastSequence = lastSequence;
      this.messages = messages;
      this.bytes = bytes;
      this.fetchedAtMillis = fetchedAtMillis;
    }

    /** The same figures, next refreshed a TTL after {@code millis} (after a failed attempt). */
    StreamStats retriedAt(long millis) {
      return new StreamStats(known, lastSequence, messages, bytes, millis);
    }

    /** Average bytes per stored message; 1 while unknown, so a size still counts sequences. */
    double averageMessageBytes() {
      if (!known) {
        return 1;
      }
      return messages == 0 ? 0 : (double) bytes / messages;
    }
  }
}
