package dev.natsio.beam;

import io.nats.client.Connection;
import io.nats.client.Message;
import java.io.IOException;
import java.time.Duration;
import java.util.NoSuchElementException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.apache.beam.sdk.io.UnboundedSource;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads one {@link JetStreamUnboundedSource}: a JetStream stream from a sequence onwards, without
 * end, through a {@link JetStreamReader} (jnats ordered consumer).
 *
 * <h3>Start and resume</h3>
 *
 * <p>A new reader starts where the splittable DoFn would ({@link
 * JetStreamMetadata#startSequence}); a reader created from a {@link JetStreamCheckpointMark}
 * starts at the mark's next sequence with the mark's watermark, so a runner that restores a
 * checkpoint reads every later message once.
 *
 * <h3>Polling</h3>
 *
 * <p>Runners call {@link #advance()} on their task thread and poll again later when it returns
 * false. While the server says more messages follow the last one read (its {@code num_pending}),
 * it waits up to {@link #POLL} for the next: long enough to bridge the moment between two pulled
 * batches while a backlog drains (Flink's source, told "nothing yet", sleeps up to 50 ms; a 1 ms
 * poll cost a drain half its throughput), short enough not to hold up the task's checkpoints.
 * Once the read has caught up it does not wait: Beam's Flink operators pass the watermark on only
 * between bundles, and end a bundle on a timer whose follow-up runs when the task thread is free;
 * a reader that waited for each message of a steady stream (one every few milliseconds) kept the
 * task thread in {@link #advance()} until the next message opened the next bundle, and windows
 * never closed (FlinkEndToEndTest, steady traffic). A split that may share its subtask with others
 * ({@link JetStreamUnboundedSource#sharesTask}) does not wait at all, so a quiet partition does not
 * hold up a busy one read in turn with it.
 * While the stream is quiet it asks the server, at most every {@link
 * JetStreamReadCore#LOOK_AHEAD_INTERVAL_MILLIS}, whether anything lies after its position; when nothing does, the watermark advances as the
 * splittable DoFn's does ({@link JetStreamReadCore#idleWatermark}).
 *
 * <h3>Off the task thread</h3>
 *
 * <p>Once a read knows its position, every request to the server (reconnecting, opening a new
 * consumer, deleting a closed consumer; the stream statistics and the caught-up check through the
 * same {@link JetStreamReadCore} mechanism the splittable DoFn uses) runs on a background thread; {@link #advance()} only starts them and picks up their results, so a server
 * that is away, or connected but without a JetStream leader, never holds the runner's task thread
 * for a request timeout. Only a new read's first {@link #start()} waits for the server: it resolves
 * where the read starts, and fails the job if it cannot.
 *
 * <h3>Rate limit</h3>
 *
 * <p>With {@code withMaxMessagesPerSecond}, a message whose slot is less than a poll away is
 * waited for; one further off is handed back to the consumer ({@link JetStreamReader#pushBack}) and
 * the reader reports "nothing yet", so the task thread is never held longer than a poll (the
 * splittable DoFn waits in its call instead).
 *
 * <h3>Outages and refusals</h3>
 *
 * <p>Once the reader knows its position, a server that cannot be reached, a connection jnats gave
 * up on, or a consumer lost in a restart or leader change makes it drop its consumer and open a new
 * one at its next sequence after {@link JetStreamReadCore#REOPEN_BACKOFF_MILLIS}, reporting "nothing yet"
 * meanwhile: an outage is waited out, not a failure that would restart the job. A refusal
 * (missing or deleted stream, work-queue stream, a missing permission), and any failure before a
 * new read first reaches its server (wrong credentials, wrong servers), is thrown with NatsIO's
 * message from the next {@link #advance()}, as the splittable read throws it
 * ({@link JetStreamReadCore}).
 *
 * <h3>Metrics</h3>
 *
 * <p>The same counters, backlog gauge and lineage as the splittable DoFn ({@link
 * JetStreamReadMetrics}), updated only from {@link #start()} and {@link #advance()}, which runners
 * call with the step's metrics container in place (Flink takes checkpoint marks and closes readers
 * outside it, where Beam would log an error and drop the update): the counters with each
 * {@code advance()} (a {@link JetStreamBatchSource}'s batch in two updates: its first message, then
 * the rest), the backlog gauge when new stream statistics arrived. {@link #getSplitBacklogBytes()}
 * answers from the same figures without a request of its own.
 */
final class JetStreamUnboundedReader extends UnboundedSource.UnboundedReader<NatsMessage> {
  private static final Logger LOG = LoggerFactory.getLogger(JetStreamUnboundedReader.class);
  static final Duration POLL = Duration.ofMillis(20);

  private final JetStreamUnboundedSource source;
  private final NatsIO.ReadSourceDescriptors spec;
  private final NatsSourceDescriptor descriptor;
  private final @Nullable RatePacer pacer;
  private final JetStreamReadCore core;
  /** How long {@link #advance()} waits for a message; null: not at all (a split that shares its subtask). */
  private final @Nullable Duration poll;

  /** The next sequence to read; null until a new read has resolved its start. Task thread only. */
  private @Nullable Long nextSequence;
  private Instant watermark;
  private NatsConnections.@Nullable Lease lease;
  private volatile @Nullable JetStreamMetadata metadata;
  private @Nullable JetStreamReader reader;
  private @Nullable CompletableFuture<Opened> opening;
  private long reopenAfterMillis;
  private long statsReportedAtMillis;
  private boolean closed;
  /** Whether the server said more messages follow the last one read: only then does a poll wait. */
  private boolean morePending = true;

  private @Nullable NatsMessage current;
  private @Nullable Instant currentTimestamp;
  /** Read but not yet added to the counters: see {@link #reportReads()}. */
  private long unreportedMessages;
  private long unreportedBytes;
  /** Written by the task thread, read by the runner's metrics thread; negative until known. */
  private volatile long backlogBytes = -1;

  JetStreamUnboundedReader(JetStreamUnboundedSource source, @Nullable JetStreamCheckpointMark mark) {
    this.source = source;
    this.spec = source.getSpec();
    this.descriptor = source.getDescriptor();
    this.nextSequence = mark == null ? null : mark.getNextSequence();
    this.watermark = mark == null ? BoundedWindow.TIMESTAMP_MIN_VALUE : mark.getWatermark();
    this.pacer = spec.getMaxMessagesPerSecond() == null ? null : new RatePacer(spec.getMaxMessagesPerSecond());
    this.core = new JetStreamReadCore(spec, descriptor.getStream());
    this.poll = source.sharesTask() ? null : POLL;
  }

  @Override
  public boolean start() throws IOException {
    JetStreamReadMetrics.reportLineage(spec.getConnectionConfiguration(), descriptor.getStream());
    return advance();
  }

  @Override
  public boolean advance() throws IOException {
    boolean read = advance(poll);
    reportReads();
    return read;
  }

  /**
   * As {@link #advance()}, but takes only a message already buffered, never waiting, and leaves
   * the counters to {@link #reportReads()}: how a {@link JetStreamBatchSource} fills a batch after
   * its first message.
   */
  boolean advanceBuffered() throws IOException {
    return advance(null);
  }

  /**
   * Adds the messages read since the last call to the read counters. Each update of a Beam counter
   * looks up the step's container and the counter in it (four counters: a tenth of the task
   * thread's time per message in a Flink drain), so the messages a batch takes after its first are
   * counted at once. Only from within {@code start()} or {@code advance()}, where the runner has put
   * the step's container in place.
   */
  void reportReads() {
    core.metrics().recordRead(unreportedMessages, unreportedBytes);
    unreportedMessages = 0;
    unreportedBytes = 0;
  }

  private boolean advance(@Nullable Duration wait) throws IOException {
    current = null;
    currentTimestamp = null;
    core.collectBackgroundResults();
    if (reader == null && !open()) {
      return false;
    }
    reportStats();
    Message message;
    try {
      message = reader.next(morePending ? wait : null); // null: take what is buffered, without waiting.
    } catch (NatsIOException e) {
      LOG.warn("Reading stream {} at sequence {} failed ({}); resuming with a new consumer",
          descriptor.getStream(), nextSequence, e.getMessage());
      reader.closeAfterFailure();
      reader = null;
      reopenAfterMillis = System.currentTimeMillis() + JetStreamReadCore.REOPEN_BACKOFF_MILLIS;
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("Interrupted while reading stream '" + descriptor.getStream() + "'", e);
    }
    core.refreshStatsInBackground(this::metadata);
    if (message == null) {
      advanceIdleWatermark();
      return false;
    }
    if (pacer != null) {
      if (pacer.nanosUntilNextSlot() > POLL.toNanos()) {
        // withMaxMessagesPerSecond: the slot is further off than a poll may take. Keep the message
        // and report "nothing yet" rather than hold up the runner's task thread until then.
        reader.pushBack(message);
        return false;
      }
      try {
        pacer.acquire();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("Interrupted while pacing stream '" + descriptor.getStream() + "'", e);
      }
    }
    JetStreamReadCore.Element element = core.toElement(message);
    nextSequence = element.sequence + 1;
    morePending = message.metaData().pendingCount() > 0;
    if (element.timestamp == null) {
      throw core.timestampFailure(element); // A source has no bad-record output: see NatsIO.Read#expand.
    }
    Instant candidate = core.watermarkAfter(element.timestamp);
    if (candidate.isAfter(watermark)) {
      watermark = candidate;
    }
    current = element.message;
    currentTimestamp = element.timestamp;
    unreportedMessages++;
    unreportedBytes += element.message.getPayload().length;
    return true;
  }

  /** A consumer opened in the background, and the position it starts at. */
  private static final class Opened {
    final JetStreamReader reader;
    final long nextSequence;

    Opened(JetStreamReader reader, long nextSequence) {
      this.reader = reader;
      this.nextSequence = nextSequence;
    }
  }

  /**
   * Starts opening a consumer at the next sequence in the background, and takes it once open;
   * false meanwhile, and while the server is away. Until the reader knows its position (a new
   * read, before the server first answered), any failure is thrown, as the splittable read's
   * initial restriction throws it: wrong credentials or servers fail the job rather than being
   * waited out. The stream is checked before a new read's first consumer.
   */
  private boolean open() {
    if (opening == null) {
      if (System.currentTimeMillis() < reopenAfterMillis) {
        return false;
      }
      @Nullable Long from = nextSequence;
      if (from == null) {
        // A new read: resolve its start here, as the splittable read's initial restriction does,
        // so that wrong servers, credentials or a missing stream fail start() itself.
        Opened opened = openAt(null);
        reader = opened.reader;
        nextSequence = opened.nextSequence;
        return true;
      }
      opening = CompletableFuture.supplyAsync(() -> openAt(from), JetStreamReadCore.REQUESTS);
    }
    if (!opening.isDone()) {
      return false;
    }
    CompletableFuture<Opened> done = opening;
    opening = null;
    try {
      Opened opened = done.join();
      reader = opened.reader;
      nextSequence = opened.nextSequence;
      return true;
    } catch (CompletionException e) {
      RuntimeException cause = e.getCause() instanceof RuntimeException ? (RuntimeException) e.getCause() : e;
      if (!(cause instanceof NatsIOException) || !JetStreamReadCore.isOutage((NatsIOException) cause)) {
        throw cause; // A refusal (e.g. the stream was deleted).
      }
      LOG.info("JetStream at {} does not answer for stream {} ({}); the read resumes when it does",
          spec.getConnectionConfiguration().displayServers(), descriptor.getStream(), cause.getMessage());
      reopenAfterMillis = System.currentTimeMillis() + JetStreamReadCore.REOPEN_BACKOFF_MILLIS;
      return false;
    }
  }

  /** On a background thread: checks the stream if the start is unknown, then opens a consumer. */
  private Opened openAt(@Nullable Long from) {
    JetStreamMetadata metadata = metadata();
    if (from != null && !metadata.isConnected()) {
      throw new NatsIOException("not connected", new IOException("the connection is reconnecting"));
    }
    long start = from != null ? from : metadata.startSequence(descriptor, metadata.readableStream(descriptor).getStreamState());
    return new Opened(
        JetStreamReader.open(spec.getConnectionConfiguration(), descriptor.getStream(), descriptor.getFilterSubjects(), start,
            spec.getBatchSize()),
        start);
  }

  /** When the server held nothing after the position at some time, the watermark may follow it. */
  private void advanceIdleWatermark() {
    if (nextSequence == null || spec.getTimestampPolicy() == NatsIO.TimestampPolicy.PROCESSING_TIME) {
      return;
    }
    JetStreamReadCore.LookAhead latest = core.lookAhead(this::metadata, descriptor.getFilterSubjects(), nextSequence);
    Instant idle = latest == null || !latest.caughtUp() ? null : core.idleWatermark(latest.askedAt);
    if (idle != null && idle.isAfter(watermark)) {
      watermark = idle;
    }
  }

  /** On the task thread (where metrics count): the backlog, once per new set of statistics. */
  private void reportStats() {
    JetStreamReadCore.StreamStats stats = core.stats();
    if (!stats.known || stats.fetchedAtMillis == statsReportedAtMillis || nextSequence == null) {
      return;
    }
    statsReportedAtMillis = stats.fetchedAtMillis;
    long backlogMessages = core.backlogMessages(nextSequence);
    backlogBytes = (long) (backlogMessages * stats.averageMessageBytes());
    core.metrics().recordBacklog(backlogMessages);
  }

  /** The read core this reader runs its requests through (for tests). */
  JetStreamReadCore core() {
    return core;
  }

  @Override
  public NatsMessage getCurrent() {
    if (current == null) {
      throw new NoSuchElementException("No current message: advance() has not returned true");
    }
    return current;
  }

  @Override
  public Instant getCurrentTimestamp() {
    if (currentTimestamp == null) {
      throw new NoSuchElementException("No current message: advance() has not returned true");
    }
    return currentTimestamp;
  }

  @Override
  public Instant getWatermark() {
    if (spec.getTimestampPolicy() == NatsIO.TimestampPolicy.PROCESSING_TIME) {
      Instant now = Instant.now();
      return now.isAfter(watermark) ? (watermark = now) : watermark;
    }
    return watermark;
  }

  @Override
  public JetStreamCheckpointMark getCheckpointMark() {
    return new JetStreamCheckpointMark(nextSequence, getWatermark());
  }

  @Override
  public JetStreamUnboundedSource getCurrentSource() {
    return source;
  }

  /**
   * The bytes stored after the reader's position, from the stream's statistics the reader fetches
   * in the background at most once a second. Flink asks from its metrics thread, also after {@link
   * #close()}, so this only reads what the task thread wrote.
   */
  @Override
  public long getSplitBacklogBytes() {
    long backlog = backlogBytes;
    return backlog < 0 ? BACKLOG_UNKNOWN : backlog;
  }

  /**
   * The shared connection's metadata, connecting on first use (background threads only). A
   * connection jnats gave up reconnecting is replaced.
   */
  private synchronized JetStreamMetadata metadata() {
    if (closed) {
      throw new NatsIOException("The reader of stream '" + descriptor.getStream() + "' is closed");
    }
    if (lease != null && lease.connection().getStatus() == Connection.Status.CLOSED) {
      lease.close();
      lease = null;
      metadata = null;
    }
    if (metadata == null) {
      lease = NatsConnections.acquireFor(this, spec.getConnectionConfiguration());
      metadata = new JetStreamMetadata(lease.connection(), spec.getConnectionConfiguration());
    }
    return metadata;
  }

  @Override
  public void close() {
    if (reader != null) {
      reader.close();
      reader = null;
    }
    if (opening != null) {
      opening.thenAccept(opened -> opened.reader.close()); // Opened after all: close it once it is.
      opening = null;
    }
    synchronized (this) {
      closed = true;
      if (lease != null) {
        lease.close();
        lease = null;
        metadata = null;
      }
    }
  }
}
