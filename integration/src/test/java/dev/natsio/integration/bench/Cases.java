package dev.natsio.integration.bench;

import dev.natsio.beam.InMemoryBatches;
import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.testing.JetStreamTestData;
import dev.natsio.integration.FlinkPipelines;
import io.nats.client.Connection;
import io.nats.client.ConsumeOptions;
import io.nats.client.IterableConsumer;
import io.nats.client.JetStream;
import io.nats.client.JetStreamApiException;
import io.nats.client.JetStreamManagement;
import io.nats.client.Message;
import io.nats.client.OrderedConsumerContext;
import io.nats.client.api.DeliverPolicy;
import io.nats.client.api.OrderedConsumerConfiguration;
import io.nats.client.api.PublishAck;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import io.nats.client.api.StreamState;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.beam.runners.direct.DirectRunner;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.Impulse;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;

/**
 * The cases, each measured the same way as its baseline: reads from the first message to the last
 * one seen at the output (so neither side is charged for starting a job or a consumer; the job's
 * wall time is reported beside it), writes from the first to the last message the server stored.
 */
final class Cases {
  /** Messages each reader pulls ahead: NatsIO's default, and the baseline's, so they pull alike. */
  static final int READ_BATCH = 1_000;

  /** NatsIO reads' withBatchSize for a tuning experiment ({@code --natsio-batch}); 0: NatsIO's default. */
  static int natsioBatch;

  private Cases() {}

  /** NatsIO.read() as every read case configures it. */
  static NatsIO.Read read(String url, String stream) {
    NatsIO.Read read = NatsIO.read().withServers(url).withStream(stream);
    return natsioBatch > 0 ? read.withBatchSize(natsioBatch) : read;
  }

  /** A throughput, and the time the whole job took, startup included. */
  static final class Timed {
    final double messagesPerSecond;
    final double wallSeconds;
    /** CPU µs per message on the reading thread(s), for reads; NaN where not measured. */
    final double cpuMicrosPerMessage;
    /** System.nanoTime of the first and the last message the rate counts; 0 where not known (writes). */
    final long firstNanos;
    final long lastNanos;

    Timed(double messagesPerSecond, double wallSeconds) {
      this(messagesPerSecond, wallSeconds, Double.NaN, 0, 0);
    }

    Timed(double messagesPerSecond, double wallSeconds, double cpuMicrosPerMessage, long firstNanos, long lastNanos) {
      this.messagesPerSecond = messagesPerSecond;
      this.wallSeconds = wallSeconds;
      this.cpuMicrosPerMessage = cpuMicrosPerMessage;
      this.firstNanos = firstNanos;
      this.lastNanos = lastNanos;
    }

    /** From a probe at the pipeline's output. */
    static Timed of(Probes.Throughput probe, double wallSeconds) {
      return new Timed(probe.messagesPerSecond(), wallSeconds, probe.cpuMicrosPerMessage(), probe.firstNanos(), probe.lastNanos());
    }
  }

  /** NatsIO's default JetStream write window, read from the transform's display data (it is not public API). */
  static int defaultMaxInFlight() {
    DisplayData data = DisplayData.from(NatsIO.write().withServers("nats://127.0.0.1:4222").withJetStream());
    for (DisplayData.Item item : data.items()) {
      if (item.getKey().equals("maxInFlight")) {
        return ((Number) item.getValue()).intValue();
      }
    }
    throw new IllegalStateException("NatsIO.write() no longer shows maxInFlight in its display data: " + data);
  }

  /** Payload {@code i} of {@code size} bytes: its index first (so messages differ), zeros after. */
  static byte[] payload(long i, int size) {
    return Probes.timestampedPayload(i, size);
  }

  static void createFileStream(Connection connection, String stream, String subject) throws Exception {
    JetStreamManagement jsm = connection.jetStreamManagement();
    try {
      jsm.deleteStream(stream);
    } catch (JetStreamApiException e) {
      // It did not exist.
    }
    JetStreamTestData.createStream(connection,
        StreamConfiguration.builder().name(stream).subjects(subject).storageType(StorageType.File).build());
  }

  /** Fills {@code stream} with {@code count} messages of {@code size} bytes, through the test harness. */
  static void fill(Connection connection, String stream, String subject, long count, int size) throws Exception {
    createFileStream(connection, stream, subject);
    JetStreamTestData.publish(connection, i -> subject, Math.toIntExact(count), i -> payload(i, size), i -> null);
    long stored = connection.jetStreamManagement().getStreamInfo(stream).getStreamState().getMsgCount();
    if (stored != count) {
      throw new IllegalStateException("Stream " + stream + " holds " + stored + " messages, expected " + count);
    }
  }

  // ---- Reads -----------------------------------------------------------------------------------

  /** The read baseline: a jnats ordered consumer iterating the stream from its first message. */
  static Timed rawRead(Connection connection, String stream, long count) throws Exception {
    long start = System.nanoTime();
    long[] figures = rawReadOrdered(connection, stream, null, count);
    return new Timed((count - 1) * 1e9 / (figures[1] - figures[0]), (System.nanoTime() - start) / 1e9, figures[2] / 1e3 / count,
        figures[0], figures[1]);
  }

  /** Fills {@code stream} with {@code count} messages over {@code partitions} subjects {@code stream.P.x}, message i in partition i mod partitions. */
  static void fillPartitioned(Connection connection, String stream, int partitions, long count, int size) throws Exception {
    createFileStream(connection, stream, stream + ".*.x");
    JetStreamTestData.publish(connection, i -> stream + "." + (i % partitions) + ".x", Math.toIntExact(count), i -> payload(i, size), i -> null);
    long stored = connection.jetStreamManagement().getStreamInfo(stream).getStreamState().getMsgCount();
    if (stored != count) {
      throw new IllegalStateException("Stream " + stream + " holds " + stored + " messages, expected " + count);
    }
  }

  /** The filter subject of partition {@code p} of a stream filled by {@link #fillPartitioned}, and NatsIO's pattern for all of them. */
  static String partitionSubject(String stream, String partition) {
    return stream + "." + partition + ".x";
  }

  /**
   * The partitioned read baseline: one jnats ordered consumer per partition, each in its own
   * thread, from the first message to the last one any of them reads; CPU is that of all the
   * reading threads together.
   */
  static Timed rawPartitionedRead(Connection connection, String stream, int partitions, long count) throws Exception {
    long start = System.nanoTime();
    long perPartition = count / partitions;
    java.util.List<CompletableFuture<long[]>> readers = new java.util.ArrayList<>();
    for (int p = 0; p < partitions; p++) {
      String filter = partitionSubject(stream, Integer.toString(p));
      readers.add(CompletableFuture.supplyAsync(() -> {
        try {
          return rawReadOrdered(connection, stream, filter, perPartition);
        } catch (Exception e) {
          throw new java.util.concurrent.CompletionException(e);
        }
      }, runnable -> new Thread(runnable, "raw-partition-reader").start()));
    }
    long first = Long.MAX_VALUE;
    long last = Long.MIN_VALUE;
    long cpu = 0;
    for (CompletableFuture<long[]> reader : readers) {
      long[] figures = reader.get();
      first = Math.min(first, figures[0]);
      last = Math.max(last, figures[1]);
      cpu += figures[2];
    }
    long total = perPartition * partitions;
    return new Timed((total - 1) * 1e9 / (last - first), (System.nanoTime() - start) / 1e9, cpu / 1e3 / total, first, last);
  }

  /**
   * Reads {@code count} messages from the first, of one filter subject (null: all) through an
   * ordered consumer: {first nanoTime, last nanoTime, CPU nanos of this thread from the first}.
   */
  private static long[] rawReadOrdered(Connection connection, String stream, String filter, long count) throws Exception {
    OrderedConsumerConfiguration configuration =
        new OrderedConsumerConfiguration().deliverPolicy(DeliverPolicy.ByStartSequence).startSequence(1);
    OrderedConsumerContext consumer = connection.getStreamContext(stream).createOrderedConsumer(
        filter == null ? configuration : configuration.filterSubject(filter));
    long first = 0;
    long last = 0;
    long cpuAtFirst = 0;
    long bytes = 0;
    try (IterableConsumer messages = consumer.iterate(ConsumeOptions.builder().batchSize(READ_BATCH).build())) {
      for (long read = 0; read < count; read++) {
        Message message = messages.nextMessage(Duration.ofSeconds(30));
        if (message == null) {
          throw new IllegalStateException("raw read of " + stream + " " + filter + " stalled after " + read + " messages");
        }
        last = System.nanoTime();
        if (read == 0) {
          first = last;
          cpuAtFirst = Probes.threadCpuNanos();
        }
        bytes += message.getData().length;
      }
      messages.stop();
    }
    if (bytes <= 0) {
      throw new IllegalStateException("raw read of " + stream + " " + filter + " saw no payload bytes");
    }
    return new long[] {first, last, Probes.threadCpuNanos() - cpuAtFirst};
  }

  /** NatsIO.read() bounded ({@code [1, count + 1)}) on Flink in batch mode. */
  static Timed flinkBatchRead(String url, String stream, long count, int parallelism) {
    return boundedRead(FlinkPipelines.batch(parallelism), url, stream, count);
  }

  /** NatsIO.read() bounded on the Direct runner, with its default settings. */
  static Timed directRead(String url, String stream, long count) {
    PipelineOptions options = PipelineOptionsFactory.create();
    options.setRunner(DirectRunner.class);
    return boundedRead(Pipeline.create(options), url, stream, count);
  }

  private static Timed boundedRead(Pipeline pipeline, String url, String stream, long count) {
    String id = "read-" + UUID.randomUUID();
    pipeline
        .apply(read(url, stream).withStopSequence(count + 1))
        .apply(Probes.countInto(id));
    return runCounted(pipeline, id, count, "bounded read of " + stream);
  }

  /**
   * Runs a bounded pipeline whose output is counted into probe {@code id}, and times it; fails
   * unless it finished with exactly {@code expected} elements.
   */
  static Timed runCounted(Pipeline pipeline, String id, long expected, String what) {
    long start = System.nanoTime();
    PipelineResult.State state = pipeline.run().waitUntilFinish();
    double wall = (System.nanoTime() - start) / 1e9;
    Probes.Throughput probe = Probes.throughput(id);
    Probes.forget(id);
    if (state != PipelineResult.State.DONE || probe.count() != expected) {
      throw new IllegalStateException(what + " ended " + state + " with " + probe.count() + " of " + expected + " elements");
    }
    return Timed.of(probe, wall);
  }

  /**
   * NatsIO.read() unbounded on Flink streaming, draining a backlog of {@code count} messages: the
   * job is cancelled once the last one has gone by.
   */
  static Timed flinkStreamingDrain(
      String url, String stream, int parallelism, long startSequence, long count, long checkpointMillis, long timeoutMillis,
      DrainTuning tuning)
      throws Exception {
    return flinkStreamingDrain(url, stream, parallelism, startSequence, count, checkpointMillis, timeoutMillis, tuning, () -> {});
  }

  /** Runner settings a drain case runs with, beside the defaults. */
  enum DrainTuning {
    /** Nothing set: what a user gets (on Flink the read is then NatsIO's UnboundedSource). */
    DEFAULTS,
    /**
     * fasterCopy (Flink hands each element to the next chained operator as it is instead of cloning
     * it through its coder; safe, as Beam forbids mutating inputs) and Beam metrics off (Beam's
     * Flink source wrapper copies every metric of the task into Flink's after each record it reads).
     */
    FASTER_COPY_NO_METRICS,
    /** {@code --experiments=use_sdf_read}: the read stays NatsIO's splittable DoFn on Flink. */
    SPLITTABLE_DOFN;

    void applyTo(FlinkPipelineOptions options) {
      options.setFasterCopy(this == FASTER_COPY_NO_METRICS);
      options.setDisableMetrics(this == FASTER_COPY_NO_METRICS);
      if (this == SPLITTABLE_DOFN) {
        org.apache.beam.sdk.options.ExperimentalOptions.addExperiment(options.as(org.apache.beam.sdk.options.ExperimentalOptions.class), "use_sdf_read");
      }
    }
  }

  /** As above; {@code whileLive} runs once the backlog is drained, before the job is cancelled. */
  static Timed flinkStreamingDrain(
      String url, String stream, int parallelism, long startSequence, long count, long checkpointMillis, long timeoutMillis,
      DrainTuning tuning, Runnable whileLive)
      throws Exception {
    Pipeline pipeline = FlinkPipelines.streaming(parallelism, checkpointMillis);
    tuning.applyTo(pipeline.getOptions().as(FlinkPipelineOptions.class));
    return drain(pipeline, read(url, stream).withStartSequence(startSequence), stream, count, timeoutMillis, whileLive);
  }

  /**
   * NatsIO.read() of {@code partitions} partitions, unbounded, on Flink streaming at {@code
   * parallelism}, draining a backlog of {@code count} messages; with fasterCopy and disableMetrics,
   * so that the runner's per-record overheads do not hide how the read scales.
   */
  static Timed flinkPartitionedDrain(
      String url, String stream, int partitions, int parallelism, long count, long checkpointMillis, long timeoutMillis)
      throws Exception {
    NatsIO.Read read = read(url, stream).withPartitions(partitionSubject(stream, "{{partition}}"), partitions);
    Pipeline pipeline = FlinkPipelines.streaming(parallelism, checkpointMillis);
    DrainTuning.FASTER_COPY_NO_METRICS.applyTo(pipeline.getOptions().as(FlinkPipelineOptions.class));
    return drain(pipeline, read, stream, count, timeoutMillis, () -> {});
  }

  /**
   * The floor under a drain with the same runner settings: {@link InMemoryBatches}, NatsIO's Flink
   * source form without NATS, on Flink streaming at parallelism 1, until {@code count} messages went by.
   */
  static Timed flinkStreamingFloor(int payload, long count, long checkpointMillis, long timeoutMillis, DrainTuning tuning)
      throws Exception {
    Pipeline pipeline = FlinkPipelines.streaming(1, checkpointMillis);
    tuning.applyTo(pipeline.getOptions().as(FlinkPipelineOptions.class));
    return drain(pipeline, InMemoryBatches.of(count, payload), "in-memory batches", count, timeoutMillis, () -> {});
  }

  private static Timed drain(
      Pipeline pipeline, PTransform<PBegin, PCollection<NatsMessage>> read, String stream, long count, long timeoutMillis,
      Runnable whileLive)
      throws Exception {
    String id = "drain-" + UUID.randomUUID();
    pipeline
        .apply(read)
        .apply(Probes.countInto(id));
    long start = System.nanoTime();
    PipelineResult result = pipeline.run();
    Probes.Throughput probe = Probes.throughput(id);
    try {
      long deadline = System.currentTimeMillis() + timeoutMillis;
      while (probe.count() < count) {
        if (System.currentTimeMillis() > deadline) {
          throw new IllegalStateException("streaming drain of " + stream + " read " + probe.count() + " of " + count + " in " + timeoutMillis + " ms");
        }
        Thread.sleep(20);
      }
      whileLive.run();
    } finally {
      cancel(result);
      Probes.forget(id);
    }
    // An unbounded read goes on past the backlog when the stream holds more (the warm-up drains a
    // prefix): the rate then covers what was read by the time the job was cancelled.
    return Timed.of(probe, (System.nanoTime() - start) / 1e9);
  }

  /**
   * Cancels a streaming job without waiting for it to wind down: Beam's SplittableDoFnOperator
   * waits up to 10 s on close for a pending checkpoint timer of its own, which would add 10 s of
   * nothing to every case. The cancelled task is idle meanwhile (it has stopped reading).
   */
  static void cancel(PipelineResult result) {
    try {
      result.cancel();
    } catch (Exception e) {
      // Already finished, or the mini-cluster is gone: nothing left running either way.
    }
  }

  // ---- Writes ----------------------------------------------------------------------------------

  /** The write baseline: jnats publishAsync with NatsIO's window, through the test harness's publisher. */
  static Timed rawWrite(Connection connection, String stream, String subject, long count, int size, int window) throws Exception {
    createFileStream(connection, stream, subject);
    long start = System.nanoTime();
    JetStreamTestData.publish(connection, i -> subject, Math.toIntExact(count), i -> payload(i, size), i -> null, window);
    double wall = (System.nanoTime() - start) / 1e9;
    return new Timed(storedRate(connection, stream, count), wall);
  }

  /** NatsIO.write() to JetStream on Flink batch: generated messages, the same payloads as the baseline's. */
  static Timed flinkWrite(Connection connection, String url, String stream, String subject, long count, int size, int parallelism)
      throws Exception {
    createFileStream(connection, stream, subject);
    Pipeline pipeline = FlinkPipelines.batch(parallelism);
    pipeline
        .apply(Impulse.create())
        .apply(ParDo.of(new GenerateFn(subject, count, size)))
        .apply(NatsIO.write().withServers(url).withJetStream());
    long start = System.nanoTime();
    PipelineResult.State state = pipeline.run().waitUntilFinish();
    double wall = (System.nanoTime() - start) / 1e9;
    if (state != PipelineResult.State.DONE) {
      throw new IllegalStateException("write job ended " + state);
    }
    return new Timed(storedRate(connection, stream, count), wall);
  }

  /**
   * Emits the write cases' messages from one element, as the baseline's loop makes them. Not
   * GenerateSequence: on Flink batch a legacy {@code Source} refreshes every metric of its chained
   * task after each record it reads (Beam's ReaderInvocationUtil.invokeAdvance), which took 40% of
   * the write job's CPU in a JFR profile and would have been charged to the writer.
   */
  static final class GenerateFn extends DoFn<byte[], NatsMessage> {
    private final String subject;
    private final long count;
    private final int size;

    GenerateFn(String subject, long count, int size) {
      this.subject = subject;
      this.count = count;
      this.size = size;
    }

    @ProcessElement
    public void process(OutputReceiver<NatsMessage> out) {
      for (long i = 0; i < count; i++) {
        out.output(NatsMessage.create(subject, payload(i, size)));
      }
    }
  }

  /**
   * Messages per second between the first and the last message the server stored, by the server's
   * own clock: the same yardstick for the baseline and NatsIO, free of job startup.
   */
  private static double storedRate(Connection connection, String stream, long count) throws Exception {
    StreamState state = connection.jetStreamManagement().getStreamInfo(stream).getStreamState();
    if (state.getMsgCount() != count) {
      throw new IllegalStateException("stream " + stream + " holds " + state.getMsgCount() + " messages, expected " + count);
    }
    long nanos = Duration.between(state.getFirstTime(), state.getLastTime()).toNanos();
    return (count - 1) * 1e9 / nanos;
  }

  // ---- Latency ---------------------------------------------------------------------------------

  /**
   * Publishes at a steady {@code rate} until {@code stop} is set, each payload carrying its publish
   * nanoTime. The schedule is absolute, so a late message is sent at once and the rate holds on
   * average; acks are awaited only to bound the window, as an application would.
   */
  static final class SteadyPublisher implements Runnable {
    private final Connection connection;
    private final String subject;
    private final int rate;
    private final int size;
    final AtomicBoolean stop = new AtomicBoolean();
    final AtomicLong published = new AtomicLong();
    volatile long startNanos;
    volatile long endNanos;
    volatile Exception failure;

    SteadyPublisher(Connection connection, String subject, int rate, int size) {
      this.connection = connection;
      this.subject = subject;
      this.rate = rate;
      this.size = size;
    }

    @Override
    public void run() {
      try {
        JetStream js = connection.jetStream();
        ArrayDeque<CompletableFuture<PublishAck>> inFlight = new ArrayDeque<>();
        long interval = 1_000_000_000L / rate;
        startNanos = System.nanoTime();
        for (long i = 0; !stop.get(); i++) {
          long due = startNanos + i * interval;
          long wait = due - System.nanoTime();
          if (wait > 0) {
            java.util.concurrent.locks.LockSupport.parkNanos(wait);
          }
          while (!inFlight.isEmpty() && (inFlight.size() >= 4_096 || inFlight.peekFirst().isDone())) {
            inFlight.removeFirst().get(30, TimeUnit.SECONDS);
          }
          inFlight.addLast(js.publishAsync(subject, Probes.timestampedPayload(System.nanoTime(), size)));
          published.incrementAndGet();
        }
        endNanos = System.nanoTime();
        while (!inFlight.isEmpty()) {
          inFlight.removeFirst().get(30, TimeUnit.SECONDS);
        }
      } catch (Exception e) {
        failure = e;
      }
    }

    double achievedRate() {
      return published.get() * 1e9 / Math.max(1, endNanos - startNanos);
    }
  }

  /** The latency baseline: a jnats ordered consumer on the stream, timing each message as it arrives. */
  static final class RawLatencyReader implements Runnable {
    private final Connection connection;
    private final String stream;
    private final String probeId;
    final AtomicBoolean stop = new AtomicBoolean();
    volatile Exception failure;

    RawLatencyReader(Connection connection, String stream, String probeId) {
      this.connection = connection;
      this.stream = stream;
      this.probeId = probeId;
    }

    @Override
    public void run() {
      Probes.Latency probe = Probes.latency(probeId);
      long[] one = new long[1];
      try {
        OrderedConsumerContext consumer = connection.getStreamContext(stream).createOrderedConsumer(
            new OrderedConsumerConfiguration().deliverPolicy(DeliverPolicy.All));
        try (IterableConsumer messages = consumer.iterate(ConsumeOptions.builder().batchSize(READ_BATCH).build())) {
          while (!stop.get()) {
            Message message = messages.nextMessage(Duration.ofMillis(100));
            if (message != null) {
              one[0] = System.nanoTime() - Probes.publishNanosOf(message.getData());
              probe.add(one, 1);
            }
          }
          messages.stop();
        }
      } catch (Exception e) {
        failure = e;
      }
    }
  }
}
