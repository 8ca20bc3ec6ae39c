package dev.natsio.beam;

import io.nats.client.Message;
import java.util.UUID;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.splittabledofn.RestrictionTracker;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * The splittable DoFn behind {@code NatsIO.read().withSubject(...)}: reads a Core NATS subject
 * through a plain or queue-group subscription, at most once.
 *
 * <h2>Why a splittable DoFn</h2>
 *
 * <p>An {@code UnboundedSource} would need a checkpoint mark, and a Core subscription has nothing
 * to put in one: no position, no replay. A splittable DoFn over the impulse lets the subscription
 * live outside the bundle ({@link CoreSubscriptions}, per JVM), shares connections with the
 * JetStream read, and gives {@code withMaxNumRecords} / {@code withMaxReadTime} the same
 * mechanism as there ({@link LimitedOffsetRange}).
 *
 * <h2>Initial restriction</h2>
 *
 * <p>A {@link LimitedOffsetRange} over {@code [0, Long.MAX_VALUE)} of message counts: position
 * {@code n} is the read's {@code n}-th message. It carries the record budget and the deadline
 * ({@code now + maxReadTime}) when set; the read is then bounded.
 *
 * <h2>Splitting</h2>
 *
 * <p>Never split up front, and only at checkpoints afterwards (fraction 0): every piece would
 * read the same subscription, so parallel pieces would add nothing but duplicates. Parallelism
 * comes from queue groups: {@code withNumReaders(n)} makes the impulse n elements (reader indexes,
 * {@link ReaderIndexes}), each with its own subscription in the group, which the runner spreads
 * over its workers like any other elements; several pipelines can also join one group.
 *
 * <h2>Checkpoint and resume</h2>
 *
 * <p>The residual starts at the next count; nothing else needs saving, since the position is the
 * subscription itself. A bundle parks the subscription when it ends and the next bundle takes it
 * back; messages that arrive in between wait in its buffer, up to {@code maxBufferedMessages}
 * (and 64 MiB). A message taken from the buffer after the runner's checkpoint is pushed back for
 * the next bundle. After a worker failure, or when the restriction moves to another worker, what
 * was buffered on the old one is lost: this read is at-most-once.
 *
 * <h2>Losses</h2>
 *
 * <p>Messages dropped because the buffer was full, and messages still buffered when the read
 * ends, are counted in the {@code NatsIO/coreMessagesDropped} metric and logged; never silently
 * dropped.
 *
 * <h2>Watermark and timestamps</h2>
 *
 * <p>Processing time: each message is stamped with the time it is taken from the buffer (its
 * receive time, up to the buffering delay), and the watermark is wall time. The output's stream is
 * null and its sequence 0.
 */
abstract class ReadFromCoreSubjectDoFn extends LiveReadDoFn<Integer> {
  static final java.time.Duration POLL_TIMEOUT = java.time.Duration.ofMillis(250);
  private static final String METRICS_NAMESPACE = "NatsIO";

  private final NatsIO.Read spec;
  /** One id per read transform: its subscription is shared by that read's bundles in a JVM, and by no other read. */
  private final String readId;
  private final Counter messagesRead = Metrics.counter(METRICS_NAMESPACE, "messagesRead");
  private final Counter bytesRead = Metrics.counter(METRICS_NAMESPACE, "bytesRead");
  private final Counter messagesDropped = Metrics.counter(METRICS_NAMESPACE, "coreMessagesDropped");

  private transient @Nullable RatePacer pacer;
  /** The subscription keys this instance parked, so teardown closes exactly those. */
  private transient java.util.@Nullable Set<String> subscriptionKeys;

  ReadFromCoreSubjectDoFn(NatsIO.Read spec) {
    this.spec = spec;
    this.readId = UUID.randomUUID().toString();
  }

  static ReadFromCoreSubjectDoFn create(NatsIO.Read spec) {
    return spec.hasLimits() ? new Bounded(spec) : new Unbounded(spec);
  }

  /** With a record or time budget: the output is bounded. */
  @BoundedPerElement
  static final class Bounded extends ReadFromCoreSubjectDoFn {
    Bounded(NatsIO.Read spec) {
      super(spec);
    }
  }

  /** The live subscription. */
  @UnboundedPerElement
  static final class Unbounded extends ReadFromCoreSubjectDoFn {
    Unbounded(NatsIO.Read spec) {
      super(spec);
    }
  }

  // ---- Restriction -----------------------------------------------------------------------------

  @GetInitialRestriction
  public LimitedOffsetRange initialRestriction() {
    return budgetOf(spec);
  }

  // ---- Reading ---------------------------------------------------------------------------------

  @ProcessElement
  public ProcessContinuation processElement(
      @Element Integer readerIndex, RestrictionTracker<LimitedOffsetRange, Long> tracker, OutputReceiver<NatsMessage> receiver)
      throws InterruptedException {
    LimitedOffsetRange budget = tracker.currentRestriction();
    long position = budget.getRange().getFrom();
    String subscriptionKey = readId + "/" + readerIndex;
    if (subscriptionKeys == null) {
      subscriptionKeys = new java.util.HashSet<>();
    }
    subscriptionKeys.add(subscriptionKey);
    CoreSubscriptions.CoreSubscription subscription = CoreSubscriptions.PARKED.take(subscriptionKey);
    if (subscription == null) {
      subscription =
          CoreSubscriptions.CoreSubscription.open(
              spec.getConnectionConfiguration(), spec.getSubject(), spec.getQueueGroup(), spec.getMaxBufferedMessages());
    }
    boolean keep = true;
    long messageCount = 0;
    long byteCount = 0;
    try {
      messagesDropped.inc(subscription.takeNewDrops());
      while (true) {
        if (messageCount >= budget.getMaxRecords() || budget.deadlinePassed()) {
          // withMaxNumRecords is reached or withMaxReadTime is up: the read ends here, without
          // waiting for another message.
          tracker.tryClaim(Long.MAX_VALUE);
          keep = false;
          return ProcessContinuation.stop();
        }
        Message message = subscription.next(POLL_TIMEOUT);
        if (message == null) {
          return ProcessContinuation.resume();
        }
        if (pacer != null) {
          pacer.acquire(); // withMaxMessagesPerSecond: wait for this message's slot.
        }
        if (!tracker.tryClaim(position)) {
          // Taken from the buffer but not ours to output: the next bundle gets it, or, when the
          // budget is spent, closing counts it as dropped.
          subscription.pushBack(message);
          keep = messageCount < budget.getMaxRecords() && !budget.deadlinePassed();
          return ProcessContinuation.stop();
        }
        position++;
        Instant now = Instant.now();
        byte[] payload = message.getData() == null ? new byte[0] : message.getData();
        receiver.outputWithTimestamp(
            NatsMessage.of(message.getSubject(), payload, JetStreamReadCore.headersOf(message), null, 0L, now), now);
        messageCount++;
        byteCount += payload.length;
      }
    } finally {
      if (keep) {
        CoreSubscriptions.PARKED.park(subscriptionKey, subscription);
      } else {
        messagesDropped.inc(subscription.close("the read reached its record or time limit"));
      }
      if (messageCount > 0) {
        messagesRead.inc(messageCount);
        bytesRead.inc(byteCount);
      }
    }
  }

  @Setup
  public void setup() {
    pacer = spec.getMaxMessagesPerSecond() == null ? null : new RatePacer(spec.getMaxMessagesPerSecond());
  }

  @Teardown
  public void teardown() {
    if (subscriptionKeys != null) {
      for (String key : subscriptionKeys) {
        CoreSubscriptions.PARKED.closeIdle(key, "its reader was torn down");
      }
    }
  }

  /**
   * Turns the impulse into reader indexes 0..n-1, one element each: a Core subscription, or a
   * durable-consumer puller.
   */
  static final class ReaderIndexes extends DoFn<byte[], Integer> {
    private final int numReaders;

    ReaderIndexes(int numReaders) {
      this.numReaders = numReaders;
    }

    @ProcessElement
    public void process(OutputReceiver<Integer> out) {
      for (int i = 0; i < numReaders; i++) {
        out.output(i);
      }
    }
  }
}
