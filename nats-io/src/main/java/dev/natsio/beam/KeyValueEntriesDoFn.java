package dev.natsio.beam;

import io.nats.client.Message;
import io.nats.client.api.MessageGetRequest;
import io.nats.client.api.MessageInfo;
import io.nats.client.api.StreamConfiguration;
import io.nats.client.api.StreamState;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.values.PCollectionView;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * The mapping step of {@link NatsIO#readKeyValue()}: turns each message the stream read delivers
 * from a bucket's {@code KV_<bucket>} stream into a {@link NatsKeyValue}, and in the latest-value
 * (snapshot) mode drops revisions that a newer revision of the same key supersedes.
 *
 * <h2>Why a step after the read</h2>
 *
 * <p>A bucket read is NatsIO's JetStream stream read, applied as is: positions, splitting,
 * checkpoints, restore and the watermark are the stream read's, and a restored job resumes at the
 * next revision. This step only maps and filters; it keeps each element's timestamp (the
 * revision's creation time).
 *
 * <h2>Latest values</h2>
 *
 * <p>The stream holds up to the bucket's history (max messages per subject) revisions of each key,
 * and the read delivers every one it finds. With a history of 1 the stream holds only each key's
 * latest revision, so every revision read is the latest as of some moment and none is dropped: a
 * key updated while the read passes may appear twice, older then newer, as in any changelog. With
 * a longer history the step asks the server for the key's latest revision (a last-by-subject
 * message get per revision read: a direct get when the stream allows it, as buckets made by jnats
 * and the nats CLI do, otherwise the JetStream API's message get) and drops the revision when a
 * newer one exists that this read will also deliver: anywhere later in the stream for an
 * unbounded read, below the snapshot's end ({@link SnapshotPoint}) for a bounded one (when the
 * latest revision lies at or past that end, a next-by-subject get decides). So a bounded snapshot
 * emits exactly each key's latest revision as of its end, even if keys change while it runs, and
 * an unbounded one emits each key's latest revision and then every later change.
 *
 * <h2>Lookups in flight</h2>
 *
 * <p>A request per revision, one at a time, would cap the read at one round trip per revision.
 * Each request is sent as the revision arrives and answered later: up to {@link
 * #MAX_PENDING_LOOKUPS} revisions wait for their answers, then the oldest are settled and output
 * (with their own timestamps, so the DoFn allows timestamp skew), and the rest when the bundle
 * finishes, so nothing is held across a bundle boundary or a checkpoint. A request that times out
 * or fails is asked again synchronously, whose failure fails the bundle.
 */
class KeyValueEntriesDoFn extends DoFn<NatsMessage, NatsKeyValue> {
  /** How long the bucket's history setting is trusted before it is looked up again. */
  private static final long HISTORY_TTL_MILLIS = 30_000;
  /** Revisions awaiting their lookup, at most; then the oldest are settled and output. */
  static final int MAX_PENDING_LOOKUPS = 1_000;
  private static final Duration LOOKUP_TIMEOUT = Duration.ofSeconds(10);
  private static final String DIRECT_GET_SEQUENCE_HEADER = "Nats-Sequence";
  private static final int NOT_FOUND = 404;

  private final NatsIO.ConnectionConfiguration configuration;
  private final String bucket;
  private final boolean latestOnly;
  /** The descriptor of a bounded snapshot, whose stop sequence ends the snapshot; null when unbounded. */
  private final @Nullable PCollectionView<NatsSourceDescriptor> snapshot;

  private final Counter superseded = Metrics.counter("NatsIO", "keyValueRevisionsSuperseded");

  private transient NatsConnections.@Nullable Lease lease;
  private transient @Nullable JetStreamMetadata metadata;
  private transient @Nullable String lookupSubject;
  private transient boolean directGet;
  private transient long history;
  private transient long historyFetchedAtMillis;
  private transient @Nullable ArrayDeque<Pending> pending;
  /** The snapshot's end (exclusive), read from the side input once per bundle; null until needed. */
  private transient @Nullable Long end;

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

  @StartBundle
  public void startBundle() {
    pending = new ArrayDeque<>();
    end = null;
  }

  @ProcessElement
  public void processElement(ProcessContext context, BoundedWindow window) throws IOException {
    NatsMessage message = context.element();
    if (!latestOnly || history() <= 1) {
      context.output(toEntry(bucket, message));
      return;
    }
    if (end == null) {
      end = snapshot == null ? Long.MAX_VALUE : context.sideInput(snapshot).getStopSequence();
    }
    // The lookup is sent now and settled later, so lookups overlap each other and the read.
    pending.addLast(new Pending(message, context.timestamp(), window, lookUpLatestRevision(message)));
    while (pending.size() >= MAX_PENDING_LOOKUPS) {
      Pending oldest = pending.removeFirst();
      if (!isSuperseded(oldest)) {
        context.outputWithTimestamp(toEntry(bucket, oldest.message), oldest.timestamp);
      }
    }
  }

  @FinishBundle
  public void finishBundle(FinishBundleContext context) throws IOException {
    while (!pending.isEmpty()) {
      Pending oldest = pending.removeFirst();
      if (!isSuperseded(oldest)) {
        context.output(toEntry(bucket, oldest.message), oldest.timestamp, oldest.window);
      }
    }
  }

  /** Revisions settled after newer ones were seen are output with their own, older, timestamps. */
  @Override
  @SuppressWarnings("deprecation")
  public org.joda.time.Duration getAllowedTimestampSkew() {
    return org.joda.time.Duration.millis(Long.MAX_VALUE);
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

  /**
   * Asks the stream for the latest message on the revision's subject: a JetStream message-get
   * request (last by subject, which the server answers from its per-subject state, unlike a
   * next-by-subject get, which scans forward), sent without waiting for the answer.
   */
  private CompletableFuture<Message> lookUpLatestRevision(NatsMessage message) {
    if (lookupSubject == null) {
      // Direct gets are answered by the stream itself, without the JetStream API's request queue:
      // faster, and what buckets made by jnats and the nats CLI allow.
      lookupSubject = configuration.jetStreamOptions().getPrefix()
          + (directGet ? "DIRECT.GET." : "STREAM.MSG.GET.") + message.getStream();
    }
    byte[] request = MessageGetRequest.lastForSubject(message.getSubject()).toJson().getBytes(StandardCharsets.UTF_8);
    try {
      return lease().connection().requestWithTimeout(lookupSubject, request, LOOKUP_TIMEOUT);
    } catch (RuntimeException e) {
      return CompletableFuture.failedFuture(e); // Settled by the synchronous lookup below.
    }
  }

  /** True when the stream holds a newer revision of the message's key below the snapshot's end. */
  private boolean isSuperseded(Pending revision) throws IOException {
    NatsMessage message = revision.message;
    long latest = latestRevision(revision);
    boolean newer;
    if (latest >= 0 && latest <= message.getSequence()) {
      newer = false; // It is the key's latest revision.
    } else if (latest >= 0 && latest < end) {
      newer = true; // The key's latest revision lies inside what this read delivers.
    } else {
      // A newer revision at or past a bounded snapshot's end (a key changed while the snapshot
      // runs), or the lookup failed: is there one in between?
      MessageInfo next = metadata().nextMessage(message.getStream(), message.getSequence() + 1, List.of(message.getSubject()));
      newer = next != null && next.getSeq() < end;
    }
    if (newer) {
      superseded.inc();
    }
    return newer;
  }

  /** The sequence of the key's latest revision, 0 when it has none, or -1 when the lookup failed. */
  private long latestRevision(Pending revision) throws IOException {
    try {
      Message reply = revision.lookup.get(LOOKUP_TIMEOUT.toMillis() * 2, TimeUnit.MILLISECONDS);
      if (directGet) {
        if (reply.isStatusMessage() && reply.getStatus().getCode() == NOT_FOUND) {
          return 0;
        }
        String sequence = reply.hasHeaders() ? reply.getHeaders().getFirst(DIRECT_GET_SEQUENCE_HEADER) : null;
        if (sequence != null) {
          return Long.parseLong(sequence);
        }
      } else {
        MessageInfo answer = new MessageInfo(reply);
        if (!answer.hasError()) {
          return answer.getSeq();
        }
        if (answer.getApiErrorCode() == JetStreamMetadata.NO_MESSAGE_FOUND) {
          return 0;
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IOException("Interrupted while looking up revisions of bucket '" + bucket + "'", e);
    } catch (ExecutionException | TimeoutException | RuntimeException e) {
      // Timed out or lost with the connection: the caller asks again, synchronously, with its errors.
    }
    return -1;
  }

  /** The bucket's history (revisions kept per key); {@code Long.MAX_VALUE} when unlimited. */
  private long history() {
    long now = System.currentTimeMillis();
    if (historyFetchedAtMillis == 0 || now - historyFetchedAtMillis > HISTORY_TTL_MILLIS) {
      StreamConfiguration stream = metadata().streamInfo(KeyValueBuckets.streamOf(bucket)).getConfiguration();
      long perSubject = stream.getMaxMsgsPerSubject();
      history = perSubject <= 0 ? Long.MAX_VALUE : perSubject;
      if (lookupSubject == null) {
        directGet = stream.getAllowDirect();
      }
      historyFetchedAtMillis = now;
    }
    return history;
  }

  private NatsConnections.Lease lease() {
    if (lease == null) {
      lease = NatsConnections.acquireFor(this, configuration);
    }
    return lease;
  }

  private JetStreamMetadata metadata() {
    if (metadata == null) {
      metadata = new JetStreamMetadata(lease().connection(), configuration);
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

  /** A revision read, waiting for the answer to whether a newer one exists. */
  private static final class Pending {
    final NatsMessage message;
    final Instant timestamp;
    final BoundedWindow window;
    final CompletableFuture<Message> lookup;

    Pending(NatsMessage message, Instant timestamp, BoundedWindow window, CompletableFuture<Message> lookup) {
      this.message = message;
      this.timestamp = timestamp;
      this.window = window;
      this.lookup = lookup;
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
        if (state.getLastSequence() > 0) {
          receiver.output(unbounded.withStopSequence(state.getLastSequence() + 1));
        } // A bucket that never held a revision: nothing to read, and no descriptor, whose stop must follow its start.
      }
    }
  }
}
