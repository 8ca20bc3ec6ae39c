package dev.natsio.beam;

import io.nats.client.Message;
import io.nats.client.impl.NatsJetStreamMetaData;
import java.util.UUID;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.StreamingOptions;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.splittabledofn.RestrictionTracker;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The splittable DoFn behind {@code NatsIO.read().withStream(s).withConsumer(name)}: reads through
 * a durable JetStream pull consumer and acknowledges each message only after the runner has
 * durably committed the bundle that output it. At-least-once; works on work-queue and interest
 * streams, which the position-tracked read cannot drain.
 *
 * <h2>Pullers</h2>
 *
 * <p>The element is a puller's index: the read emits as many as the job's parallelism ({@link
 * #pullers}; one when the read has a record or time limit, which applies to the whole read), and
 * the runner spreads them over its workers like any other elements. Each pulls from the same
 * consumer, which hands each message to one of them, and acknowledges its own messages.
 *
 * <h2>Initial restriction</h2>
 *
 * <p>Binds to the consumer (creating or updating it from {@code withConsumerConfiguration}), and
 * refuses push consumers and any ack policy but explicit. The restriction is a {@link
 * LimitedOffsetRange} over {@code [0, Long.MAX_VALUE)} of message counts with the read's record and
 * time budget: the server, not the restriction, keeps the position (the consumer's ack floor).
 *
 * <h2>Splitting</h2>
 *
 * <p>Only at checkpoints (fraction 0). Pullers of one consumer share its messages, so a fractional
 * split would add a reader, not divide work that has a size.
 *
 * <h2>Acknowledgement and checkpoints</h2>
 *
 * <p>The reply subjects of the messages a bundle outputs are kept (not the messages) in {@link
 * PendingAcks}, which keeps them alive on the server with in-progress acks until a {@link
 * BundleFinalizer} callback acknowledges them once the runner has committed the bundle, however
 * long the checkpoint takes compared with the ack wait. A failed bundle acks nothing: its DoFn's
 * teardown returns its messages (nak), or, when the worker is gone, the ack wait runs out; they
 * come back marked by {@link NatsMessage#getDeliveredCount()} above 1 and counted in {@code
 * NatsIO/messagesRedelivered}. The pull is parked between bundles ({@link DurableConsumerReader});
 * messages it pulled but no bundle output are nak'ed when it closes.
 *
 * <p>Runners must finalize bundles: the Direct runner does after each commit; Flink only in
 * streaming mode with checkpointing (callbacks run when a checkpoint completes), so {@link
 * #finalizationProblem} refuses Flink batch mode and Flink without checkpointing when the pipeline
 * is built; Dataflow needs Runner v2. The consumer's max ack pending bounds the messages read
 * between commits.
 *
 * <h2>Watermark and timestamps</h2>
 *
 * <p>Processing time: redeliveries arrive out of publish order, so publish-time timestamps would
 * fall behind the watermark. Each message's publish time stays in {@link NatsMessage#getTimestamp()}.
 */
abstract class ReadFromDurableConsumerDoFn extends LiveReadDoFn<Integer> {
  private static final Logger LOG = LoggerFactory.getLogger(ReadFromDurableConsumerDoFn.class);
  static final java.time.Duration POLL_TIMEOUT = java.time.Duration.ofMillis(250);
  private static final String METRICS_NAMESPACE = "NatsIO";

  private final NatsIO.Read spec;
  /** One id per read transform: its parked pull is reused by that read's bundles only. */
  private final String readId;
  private final Counter messagesRead = Metrics.counter(METRICS_NAMESPACE, "messagesRead");
  private final Counter bytesRead = Metrics.counter(METRICS_NAMESPACE, "bytesRead");
  private final Counter messagesRedelivered = Metrics.counter(METRICS_NAMESPACE, "messagesRedelivered");

  private transient @Nullable RatePacer pacer;
  private transient @Nullable PendingAcks pendingAcks;

  ReadFromDurableConsumerDoFn(NatsIO.Read spec) {
    this.spec = spec;
    this.readId = UUID.randomUUID().toString();
  }

  static ReadFromDurableConsumerDoFn create(NatsIO.Read spec) {
    return spec.hasLimits() ? new Bounded(spec) : new Unbounded(spec);
  }

  /** With a record or time budget: the output is bounded. */
  @BoundedPerElement
  static final class Bounded extends ReadFromDurableConsumerDoFn {
    Bounded(NatsIO.Read spec) {
      super(spec);
    }
  }

  /** The live read. */
  @UnboundedPerElement
  static final class Unbounded extends ReadFromDurableConsumerDoFn {
    Unbounded(NatsIO.Read spec) {
      super(spec);
    }
  }

  // ---- Runner support --------------------------------------------------------------------------

  /**
   * Why the runner in {@code options} would never acknowledge, or null when it would: Flink runs
   * bundle finalization only in streaming mode with checkpointing on.
   */
  static @Nullable String finalizationProblem(PipelineOptions options, boolean bounded) {
    return finalizationProblem(RunnerOptions.runnerName(options), options.as(StreamingOptions.class).isStreaming(),
        RunnerOptions.flinkCheckpointingInterval(options), bounded);
  }

  static @Nullable String finalizationProblem(String runner, boolean streaming, @Nullable Long checkpointingInterval, boolean bounded) {
    if (!runner.contains("Flink")) {
      return null;
    }
    boolean checkpointing = checkpointingInterval != null && checkpointingInterval > 0;
    if (bounded && !streaming) {
      return "NatsIO's durable-consumer read acknowledges messages through bundle finalization, which the Flink runner "
          + "does not support in batch mode, so nothing would ever be acknowledged. Run it in streaming mode with "
          + "checkpointing: --streaming=true --checkpointingInterval=10000 (milliseconds).";
    }
    if (!checkpointing) {
      return "NatsIO's durable-consumer read acknowledges messages when the runner commits them; the Flink runner does that "
          + "only when a checkpoint completes, and checkpointing is off, so nothing would ever be acknowledged. Enable it: "
          + "--checkpointingInterval=10000 (milliseconds).";
    }
    return null;
  }

  /**
   * How many pullers a read uses: the job's parallelism where the runner's options say it (Flink's
   * {@code --parallelism}, the Direct runner's {@code --targetParallelism}), else one.
   */
  static int pullers(PipelineOptions options) {
    Object parallelism = null;
    if (RunnerOptions.isFlink(options)) {
      parallelism = RunnerOptions.read(options, RunnerOptions.FLINK_OPTIONS, "getParallelism");
    } else if (RunnerOptions.runnerName(options).contains("Direct")) {
      parallelism = RunnerOptions.read(options, RunnerOptions.DIRECT_OPTIONS, "getTargetParallelism");
    }
    return parallelism instanceof Integer && (Integer) parallelism > 0 ? (Integer) parallelism : 1;
  }

  // ---- Restriction -----------------------------------------------------------------------------

  @GetInitialRestriction
  public LimitedOffsetRange initialRestriction() {
    NatsIO.ConnectionConfiguration configuration = spec.getConnectionConfiguration();
    try (NatsConnections.Lease lease = NatsConnections.acquire(configuration)) {
      JetStreamMetadata metadata = new JetStreamMetadata(lease.connection(), configuration);
      metadata.streamInfo(spec.getStream()); // A missing stream fails with its own clear message.
      io.nats.client.api.ConsumerInfo info =
          DurableConsumerReader.bind(
              configuration, lease.connection().jetStreamManagement(configuration.jetStreamOptions()), spec.getStream(),
              spec.consumerName(), spec.getConsumerConfigurationJson());
      LOG.info(
          "Reading stream '{}' through durable consumer '{}' (ack wait {}, max ack pending {}, {} pending): messages are "
              + "acknowledged after the runner commits them.",
          spec.getStream(), info.getName(), info.getConsumerConfiguration().getAckWait(),
          info.getConsumerConfiguration().getMaxAckPending(), info.getNumPending());
    } catch (java.io.IOException e) {
      throw new NatsIOException("JetStream is not available at " + configuration.displayServers() + ": " + e.getMessage(), e);
    }
    return budgetOf(spec);
  }

  // ---- Reading ---------------------------------------------------------------------------------

  @ProcessElement
  public ProcessContinuation processElement(
      @Element Integer puller, RestrictionTracker<LimitedOffsetRange, Long> tracker, OutputReceiver<NatsMessage> receiver,
      BundleFinalizer finalizer)
      throws InterruptedException {
    LimitedOffsetRange budget = tracker.currentRestriction();
    long position = budget.getRange().getFrom();
    String key = readId + "/" + puller;
    DurableConsumerReader reader = DurableConsumerReader.PARKED.take(key);
    if (reader == null) {
      reader = DurableConsumerReader.open(spec.getConnectionConfiguration(), spec.getStream(), spec.consumerName(), spec.getBatchSize());
    }
    PendingAcks acks = pendingAcks(reader.ackWait());
    PendingAcks.Batch batch = acks.open();
    boolean keep = true;
    long messageCount = 0;
    long byteCount = 0;
    long redelivered = 0;
    try {
      while (true) {
        if (messageCount >= budget.getMaxRecords() || budget.deadlinePassed()) {
          tracker.tryClaim(Long.MAX_VALUE); // The budget is spent: the read ends without waiting for more.
          keep = false;
          return ProcessContinuation.stop();
        }
        Message message = reader.next(POLL_TIMEOUT);
        if (message == null) {
          return ProcessContinuation.resume();
        }
        if (pacer != null) {
          pacer.acquire(); // withMaxMessagesPerSecond: wait for this message's slot.
        }
        if (!tracker.tryClaim(position)) {
          reader.pushBack(message); // Output by the next bundle, or nak'ed when the reader closes.
          keep = messageCount < budget.getMaxRecords() && !budget.deadlinePassed();
          return ProcessContinuation.stop();
        }
        position++;
        // Kept alive from now until the bundle's commit acknowledges it.
        batch.add(message.getReplyTo(), reader.handOver(message));
        NatsJetStreamMetaData meta = message.metaData();
        byte[] payload = message.getData() == null ? new byte[0] : message.getData();
        NatsMessage output =
            NatsMessage.of(
                message.getSubject(), payload, JetStreamReadCore.headersOf(message), spec.getStream(), meta.streamSequence(),
                JetStreamReadCore.toInstant(meta.timestamp()), meta.deliveredCount());
        receiver.outputWithTimestamp(output, Instant.now());
        messageCount++;
        byteCount += payload.length;
        if (output.isRedelivered()) {
          redelivered++;
        }
      }
    } finally {
      if (batch.isEmpty()) {
        acks.discard(batch);
      } else {
        // Registered even when the bundle then fails: the runner runs callbacks only for committed bundles. The expiry
        // counts from the batch's first delivery, as the keep-alive does.
        finalizer.afterBundleCommit(batch.expiry(), () -> acks.ack(batch));
      }
      if (keep) {
        DurableConsumerReader.PARKED.park(key, reader);
      } else {
        reader.close();
      }
      if (messageCount > 0) {
        messagesRead.inc(messageCount);
        bytesRead.inc(byteCount);
      }
      if (redelivered > 0) {
        messagesRedelivered.inc(redelivered);
      }
    }
  }

  /** This instance's messages waiting for their commit; created with the first reader, as it needs the ack wait. */
  private PendingAcks pendingAcks(java.time.Duration ackWait) {
    if (pendingAcks == null) {
      pendingAcks = new PendingAcks(spec.getConnectionConfiguration(), ackWait);
    }
    return pendingAcks;
  }

  @Setup
  public void setup() {
    pacer = spec.getMaxMessagesPerSecond() == null ? null : new RatePacer(spec.getMaxMessagesPerSecond());
  }

  @Teardown
  public void teardown() {
    if (pendingAcks != null) {
      // Torn down without their commit (a failure, a stop): redelivered now, not after the keep-alive gives up.
      pendingAcks.close();
      pendingAcks = null;
    }
    DurableConsumerReader.PARKED.closeIdleWhere(key -> key.startsWith(readId + "/"), "its reader was torn down");
  }
}
