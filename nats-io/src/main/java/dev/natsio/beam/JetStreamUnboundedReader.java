package dev.natsio.beam;

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
 * While the stream is quiet it asks the server, at most every {@link #IDLE_CHECK_INTERVAL_MILLIS},
 * whether anything lies after its position; when nothing does, a publish-time watermark advances
 * to now less the idle delay, as the splittable DoFn's does.
 *
 * <h3>Outages and refusals</h3>
 *
 * <p>A server that cannot be reached, or a consumer lost in a restart or leader change, makes the
 * reader drop its consumer and open a new one at its next sequence after {@link
 * #REOPEN_BACKOFF_MILLIS}, reporting "nothing yet" meanwhile: an outage is waited out, not a
 * failure that would restart the job. A refusal (missing stream, work-queue stream) is thrown with NatsIO's
 * message.
 *
 * <h3>Metrics</h3>
 *
 * <p>The same counters, backlog gauge and lineage as the splittable DoFn ({@link
 * JetStreamReadMetrics}), updated only from {@link #start()} and {@link #advance()}, which runners
 * call with the step's metrics container in place (Flink takes checkpoint marks and closes readers
 * outside it, where Beam would log an error and drop the update): the counters with each message,
 * the backlog when the stream is quiet.
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

  private @Nullable Long nextSequence;
  private Instant watermark;
  private NatsConnections.@Nullable Lease lease;
  private @Nullable JetStreamMetadata metadata;
  private @Nullable JetStreamReader reader;
  private long reopenAfterMillis;
  private long lastIdleCheckMillis;

  private @Nullable NatsMessage current;
  private @Nullable Instant currentTimestamp;
  private volatile long lastSequenceSeen = -1;
  private volatile double averageMessageBytes;
  private volatile long statsFetchedAtMillis;

  JetStreamUnboundedReader(JetStreamUnboundedSource source, @Nullable JetStreamCheckpointMark mark) {
    this.source = source;
    this.spec = source.getSpec();
    this.descriptor = source.getDescriptor();
    this.nextSequence = mark == null ? null : mark.getNextSequence();
    this.watermark = mark == null ? BoundedWindow.TIMESTAMP_MIN_VALUE : mark.getWatermark();
    this.pacer = spec.getMaxMessagesPerSecond() == null ? null : new RatePacer(spec.getMaxMessagesPerSecond());
    this.metrics = JetStreamReadMetrics.forStream(descriptor.getStream());
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
    Message message;
    try {
      message = reader.next(POLL);
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
      reportBacklog();
      maybeAdvanceIdleWatermark();
      return false;
    }
    if (pacer != null) {
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
    lastSequenceSeen = Math.max(lastSequenceSeen, sequence);
    metrics.recordRead(1, output.getPayload().length);
    return true;
  }

  /** Opens a consumer at the next sequence (resolving the start first); false while the server is away. */
  private boolean open() {
    if (System.currentTimeMillis() < reopenAfterMillis) {
      return false;
    }
    try {
      if (metadata != null && !metadata.isConnected()) {
        // Reconnecting: a request now would block the runner's task thread for its whole timeout.
        reopenAfterMillis = System.currentTimeMillis() + REOPEN_BACKOFF_MILLIS;
        return false;
      }
      StreamState state = metadata().readableStream(descriptor).getStreamState();
      if (nextSequence == null) {
        nextSequence = metadata().startSequence(descriptor, state);
      }
      reader = JetStreamReader.open(
          spec.getConnectionConfiguration(), descriptor.getStream(), descriptor.getFilterSubjects(), nextSequence, spec.getBatchSize());
      return true;
    } catch (NatsIOException e) {
      if (!(e.getCause() instanceof IOException)) {
        throw e; // A refusal (e.g. the stream does not exist): waiting will not help.
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

  /** The bytes stored after the reader's position, from the stream's state fetched at most once a second. */
  @Override
  public long getSplitBacklogBytes() {
    Long next = nextSequence;
    if (next == null) {
      return BACKLOG_UNKNOWN;
    }
    refreshStats();
    if (statsFetchedAtMillis == 0) {
      return BACKLOG_UNKNOWN;
    }
    return (long) (Math.max(0, lastSequenceSeen + 1 - next) * averageMessageBytes);
  }

  private void refreshStats() {
    long now = System.currentTimeMillis();
    if (now - statsFetchedAtMillis < STATS_TTL_MILLIS) {
      return;
    }
    try {
      StreamState state = metadata().streamInfo(descriptor.getStream()).getStreamState();
      averageMessageBytes = state.getMsgCount() == 0 ? 0 : (double) state.getByteCount() / state.getMsgCount();
      lastSequenceSeen = Math.max(lastSequenceSeen, state.getLastSequence());
      statsFetchedAtMillis = now;
    } catch (RuntimeException e) {
      LOG.debug("Could not refresh the state of stream {}; using the last known", descriptor.getStream(), e);
    }
  }

  private void reportBacklog() {
    Long next = nextSequence;
    if (next != null && statsFetchedAtMillis != 0) {
      metrics.recordBacklog(lastSequenceSeen + 1 - next);
    }
  }

  private synchronized JetStreamMetadata metadata() {
    if (metadata == null) {
      lease = NatsConnections.acquire(spec.getConnectionConfiguration());
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
  public synchronized void close() {
    closeReader();
    if (lease != null) {
      lease.close();
      lease = null;
      metadata = null;
    }
  }
}
