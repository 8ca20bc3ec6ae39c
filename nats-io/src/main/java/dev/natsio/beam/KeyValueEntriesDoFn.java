package dev.natsio.beam;

import io.nats.client.api.MessageInfo;
import io.nats.client.api.StreamState;
import java.io.IOException;
import java.util.List;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.values.PCollectionView;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * The mapping step of {@link NatsIO#readKeyValue()}: turns each message the stream read delivers
 * from a bucket's {@code KV_<bucket>} stream into a {@link NatsKeyValue}, and in the latest-value
 * (snapshot) mode drops revisions that a newer revision of the same key supersedes.
 *
 * <h3>Why a step after the read</h3>
 *
 * <p>A bucket read is NatsIO's JetStream stream read, applied as is: positions, splitting,
 * checkpoints, restore and the watermark are the stream read's, and a restored job resumes at the
 * next revision. This step only maps and filters; it keeps each element's timestamp (the
 * revision's creation time).
 *
 * <h3>Latest values</h3>
 *
 * <p>The stream holds up to the bucket's history (max messages per subject) revisions of each key,
 * and the read delivers every one it finds. With a history of 1 the stream holds only each key's
 * latest revision, so every revision read is the latest as of some moment and none is dropped: a
 * key updated while the read passes may appear twice, older then newer, as in any changelog. With
 * a longer history the step asks the server for the key's next revision after the one read (a
 * next-by-subject message lookup, one round trip per revision) and drops the revision when a newer
 * one exists that this read will also deliver: anywhere later in the stream for an unbounded read,
 * below the snapshot's end ({@link SnapshotPoint}) for a bounded one. So a bounded snapshot emits
 * exactly each key's latest revision as of its end, even if keys change while it runs, and an
 * unbounded one emits each key's latest revision and then every later change.
 */
class KeyValueEntriesDoFn extends DoFn<NatsMessage, NatsKeyValue> {
  /** How long the bucket's history setting is trusted before it is looked up again. */
  private static final long HISTORY_TTL_MILLIS = 30_000;

  private final NatsIO.ConnectionConfiguration configuration;
  private final String bucket;
  private final boolean latestOnly;
  /** The descriptor of a bounded snapshot, whose stop sequence ends the snapshot; null when unbounded. */
  private final @Nullable PCollectionView<NatsSourceDescriptor> snapshot;

  private final Counter superseded = Metrics.counter("NatsIO", "keyValueRevisionsSuperseded");

  private transient NatsConnections.@Nullable Lease lease;
  private transient @Nullable JetStreamMetadata metadata;
  private transient long history;
  private transient long historyFetchedAtMillis;

  KeyValueEntriesDoFn(
      NatsIO.ConnectionConfiguration configuration,
      String bucket,
      boolean latestOnly,
      @Nullable PCollectionView<NatsSourceDescriptor> snapshot) {
    this.configuration = configuration;
    this.bucket = bucket;
    this.latestOnly = latestOnly;
    this.snapshot = snapshot;
  }

  @ProcessElement
  public void processElement(ProcessContext context) throws IOException {
    NatsMessage message = context.element();
    if (latestOnly && isSuperseded(message, snapshot == null ? Long.MAX_VALUE : context.sideInput(snapshot).getStopSequence())) {
      superseded.inc();
      return;
    }
    context.output(toEntry(bucket, message));
  }

  static NatsKeyValue toEntry(String bucket, NatsMessage message) {
    return NatsKeyValue.of(
        bucket,
        KeyValueBuckets.keyOf(bucket, message.getSubject()),
        message.getPayload(),
        message.getSequence(),
        KeyValueBuckets.operationOf(message.getHeaders()),
        message.getTimestamp());
  }

  /** True when the stream holds a newer revision of the message's key below {@code end}. */
  private boolean isSuperseded(NatsMessage message, long end) throws IOException {
    if (history() <= 1) {
      return false;
    }
    MessageInfo next =
        metadata().nextMessage(message.getStream(), message.getSequence() + 1, List.of(message.getSubject()));
    return next != null && next.getSeq() < end;
  }

  /** The bucket's history (revisions kept per key); 0 or less when unlimited. */
  private long history() {
    long now = System.currentTimeMillis();
    if (historyFetchedAtMillis == 0 || now - historyFetchedAtMillis > HISTORY_TTL_MILLIS) {
      long perSubject = metadata().streamInfo(KeyValueBuckets.streamOf(bucket)).getConfiguration().getMaxMsgsPerSubject();
      history = perSubject <= 0 ? Long.MAX_VALUE : perSubject;
      historyFetchedAtMillis = now;
    }
    return history;
  }

  private JetStreamMetadata metadata() {
    if (metadata == null) {
      lease = NatsConnections.acquireFor(this, configuration);
      metadata = new JetStreamMetadata(lease.connection(), configuration);
    }
    return metadata;
  }

  @Teardown
  public void teardown() {
    if (lease != null) {
      lease.close();
      lease = null;
      metadata = null;
    }
  }

  /**
   * The first step of a bounded snapshot: fixes the snapshot's end, the bucket's last revision + 1
   * when the read starts, and outputs the descriptor of the stream read up to it. The same
   * descriptor is the side input that tells {@link KeyValueEntriesDoFn} where the snapshot ends.
   * A bucket that does not exist fails here with an error naming it.
   */
  static final class SnapshotPoint extends DoFn<byte[], NatsSourceDescriptor> {
    private final NatsIO.ConnectionConfiguration configuration;
    private final NatsSourceDescriptor unbounded;

    SnapshotPoint(NatsIO.ConnectionConfiguration configuration, NatsSourceDescriptor unbounded) {
      this.configuration = configuration;
      this.unbounded = unbounded;
    }

    @ProcessElement
    public void processElement(OutputReceiver<NatsSourceDescriptor> receiver) {
      try (NatsConnections.Lease lease = NatsConnections.acquire(configuration)) {
        JetStreamMetadata metadata = new JetStreamMetadata(lease.connection(), configuration);
        StreamState state = metadata.streamInfo(unbounded.getStream()).getStreamState();
        receiver.output(unbounded.withStopSequence(state.getLastSequence() + 1));
      }
    }
  }
}
