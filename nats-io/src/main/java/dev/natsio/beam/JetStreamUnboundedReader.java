package dev.natsio.beam;

import io.nats.client.Connection;
import io.nats.client.Message;
import io.nats.client.api.StreamState;
import io.nats.client.impl.NatsJetStreamMetaData;
import java.io.IOException;
import java.time.Duration;
import java.util.NoSuchElementException;
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
 * false. It waits up to {@link #POLL} for a message: long enough to bridge the moment between two
 * pulled batches while a backlog drains (Flink's source, told "nothing yet", sleeps up to 50 ms; a
 * 1 ms poll cost a drain half its throughput), short enough not to hold up the task's checkpoints.
 * A split that may share its subtask with others ({@link JetStreamUnboundedSource#sharesTask})
 * does not wait at all, so a quiet partition does not hold up a busy one read in turn with it.
 * While the stream is quiet it asks the server, at most every {@link #IDLE_CHECK_INTERVAL_MILLIS},
 * whether anything lies after its position; when nothing does, a publish-time watermark advances
 * to now less the idle delay, as the splittable DoFn's does.
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
 * one at its next sequence after {@link #REOPEN_BACKOFF_MILLIS}, reporting "nothing yet"
 * meanwhile: an outage is waited out, not a failure that would restart the job. It sends no
 * request while the connection is reconnecting, since the request would block the task thread
 * for its whole timeout. A refusal (missing stream, work-queue stream), and any failure before a
 * new read first reaches its server (wrong credentials, wrong servers), is thrown with NatsIO's
 * message, as the splittable read's initial restriction throws it.
 *
 * <h3>Metrics</h3>
 *
 * <p>The same counters, backlog gauge and lineage as the splittable DoFn ({@link
 * JetStreamReadMetrics}), updated only from {@link #start()} and {@link #advance()}, which runners
 * call with the step's metrics container in place (Flink takes checkpoint marks and closes readers
 * outside it, where Beam would log an error and drop the update): the counters with each message,
 * the backlog gauge about once a second. {@link #getSplitBacklogBytes()} answers from the same
 * figures without a request of its own.
 */
final class JetStreamUnboundedReader extends UnboundedSource.UnboundedReader<NatsMessage> {
  private static final Logger LOG = LoggerFactory.getLogger(JetStreamUnboundedReader.class);
  static final Duration POLL = Duration.ofMillis(20);
  static final long IDLE_CHECK_INTERVAL_MILLIS = 250;
  static final long REOPEN_BACKOFF_MILLIS = 1_000;
  private static final long STATS_TTL_MILLIS = 1_000;

  private final JetStreamUnboundedSource source;
  private final NatsIO.ReadSourceDescriptors spec;
  private final NatsSourceDescriptor descriptor;
  private final @Nullable RatePacer pacer;
  private final JetStreamReadMetrics metrics;
  private final @Nullable Duration poll;

  private @Nullable Long nextSequence;
  private Instant watermark;
  private NatsConnections.@Nullable Lease lease;
  private @Nullable JetStreamMetadata metadata;
  private @Nullable JetStreamReader reader;
  private long reopenAfterMillis;
  private long lastIdleCheckMillis;

  private @Nullable NatsMessage current;
  private @Nullable Instant currentTimestamp;
  private boolean streamChecked;
  private long statsFetchedAtMillis;
  /** Written by the task thread, read by the runner's metrics thread; negative until known. */
  private volatile long backlogBytes = -1;

  JetStreamUnboundedReader(JetStreamUnboundedSource source, @Nullable JetStreamCheckpointMark mark) {
    this.source = source;
    this.spec = source.getSpec();
    this.descriptor = source.getDescriptor();
    this.nextSequence = mark == null ? null : mark.getNextSequence();
    this.watermark = mark == null ? BoundedWindow.TIMESTAMP_MIN_VALUE : mark.getWatermark();
    this.pacer = spec.getMaxMessagesPerSecond() == null ? null : new RatePacer(spec.getMaxMessagesPerSecond());
    this.metrics = JetStreamReadMetrics.forStream(descriptor.getStream());
    this.poll = source.sharesTask() ? null : POLL;
  }

  @Override
  public boolean start() throws IOException {
    JetStreamReadMetrics.reportLineage(spec.getConnectionConfiguration(), descriptor.getStream());
    return advance();
  }

  @Override
  public boolean advance() throws IOException {
    current = null;
    currentTimestamp = null;
    if (reader == null && !open()) {
      return false;
    }
    refreshStatsIfDue();
    Message message;
    try {
      message = reader.next(poll); // null: take what is buffered, without waiting.
    } catch (NatsIOException e) {
      LOG.warn("Reading stream {} at sequence {} failed ({}); resuming with a new consumer",
          descriptor.getStream(), nextSequence, e.getMessage());
      closeReader();
      reopenAfterMillis = System.currentTimeMillis() + REOPEN_BACKOFF_MILLIS;
      return false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("Interrupted while reading stream '" + descriptor.getStream() + "'", e);
    }
    if (message == null) {
      maybeAdvanceIdleWatermark();
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
    NatsJetStreamMetaData meta = message.metaData();
    long sequence = meta.streamSequence();
    Instant publishTime = ReadFromJetStreamDoFn.toInstant(meta.timestamp());
    NatsMessage output = NatsMessage.of(
        message.getSubject(), message.getData(), ReadFromJetStreamDoFn.headersOf(message), descriptor.getStream(), sequence, publishTime);
    Instant timestamp = spec.timestampOf(output, publishTime);
    Instant candidate = spec.watermarkAfter(timestamp);
    if (candidate.isAfter(watermark)) {
      watermark = candidate;
    }
    current = output;
    currentTimestamp = timestamp;
    nextSequence = sequence + 1;
    metrics.recordRead(1, output.getPayload().length);
    return true;
  }

  /**
   * Opens a consumer at the next sequence; false while the server is away. Until the reader knows
   * its position (a new read, before the server first answered), any failure is thrown, as the
   * splittable read's initial restriction throws it: wrong credentials or servers fail the job
   * rather than being waited out. The stream is checked once, before the first consumer.
   */
  private boolean open() {
    if (System.currentTimeMillis() < reopenAfterMillis) {
      return false;
    }
    if (lease != null && lease.connection().getStatus() == Connection.Status.CLOSED) {
      releaseMetadata(); // jnats gave up reconnecting: the next look-up starts a new connection.
    }
    if (metadata != null && !metadata.isConnected()) {
      // Reconnecting: a request now would block the runner's task thread for its whole timeout.
      reopenAfterMillis = System.currentTimeMillis() + REOPEN_BACKOFF_MILLIS;
      return false;
    }
    try {
      if (!streamChecked) {
        StreamState state = metadata().readableStream(descriptor).getStreamState();
        if (nextSequence == null) {
          nextSequence = metadata().startSequence(descriptor, state);
        }
        streamChecked = true;
      }
      reader = JetStreamReader.open(
          spec.getConnectionConfiguration(), descriptor.getStream(), descriptor.getFilterSubjects(), nextSequence, spec.getBatchSize());
      return true;
    } catch (NatsIOException e) {
      if (!(e.getCause() instanceof IOException) || nextSequence == null) {
        throw e; // A refusal (e.g. the stream does not exist), or a read that never reached its server.
      }
      LOG.info("JetStream at {} does not answer for stream {} ({}); the read resumes when it does",
          spec.getConnectionConfiguration().displayServers(), descriptor.getStream(), e.getMessage());
      reopenAfterMillis = System.currentTimeMillis() + REOPEN_BACKOFF_MILLIS;
      return false;
    }
  }

  private void maybeAdvanceIdleWatermark() {
    long now = System.currentTimeMillis();
    if (spec.getTimestampPolicy() != NatsIO.TimestampPolicy.PUBLISH_TIME
        || nextSequence == null
        || now - lastIdleCheckMillis < IDLE_CHECK_INTERVAL_MILLIS) {
      return;
    }
    lastIdleCheckMillis = now;
    if (metadata().isCaughtUp(descriptor, nextSequence)) {
      Instant idle = new Instant(now).minus(spec.getIdleWatermarkDelay());
      if (idle.isAfter(watermark)) {
        watermark = idle;
      }
    }
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
   * The bytes stored after the reader's position, from the stream's state that {@link #advance()}
   * fetches at most once a second. Flink asks from its metrics thread, also after {@link #close()},
   * so this only reads what the task thread wrote.
   */
  @Override
  public long getSplitBacklogBytes() {
    long backlog = backlogBytes;
    return backlog < 0 ? BACKLOG_UNKNOWN : backlog;
  }

  /** Refreshes the stream's state (at most once a second, never while disconnected) and reports the backlog. */
  private void refreshStatsIfDue() {
    long now = System.currentTimeMillis();
    if (now - statsFetchedAtMillis < STATS_TTL_MILLIS || metadata == null || !metadata.isConnected()) {
      return;
    }
    statsFetchedAtMillis = now;
    try {
      StreamState state = metadata.streamInfo(descriptor.getStream()).getStreamState();
      double averageMessageBytes = state.getMsgCount() == 0 ? 0 : (double) state.getByteCount() / state.getMsgCount();
      long backlogMessages = Math.max(0, state.getLastSequence() + 1 - nextSequence);
      backlogBytes = (long) (backlogMessages * averageMessageBytes);
      metrics.recordBacklog(backlogMessages);
    } catch (RuntimeException e) {
      LOG.debug("Could not refresh the state of stream {}; using the last known", descriptor.getStream(), e);
    }
  }

  private JetStreamMetadata metadata() {
    if (metadata == null) {
      lease = NatsConnections.acquireFor(this, spec.getConnectionConfiguration());
      metadata = new JetStreamMetadata(lease.connection(), spec.getConnectionConfiguration());
    }
    return metadata;
  }

  private void closeReader() {
    if (reader != null) {
      reader.close();
      reader = null;
    }
  }

  @Override
  public void close() {
    closeReader();
    releaseMetadata();
  }

  private void releaseMetadata() {
    if (lease != null) {
      lease.close();
      lease = null;
      metadata = null;
    }
  }
}
