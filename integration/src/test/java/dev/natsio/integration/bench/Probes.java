package dev.natsio.integration.bench;

import dev.natsio.beam.NatsMessage;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;

/**
 * Measuring points at a pipeline's output. Flink's local mini-cluster and the Direct runner run in
 * this JVM, so a DoFn can report into static state that the benchmark reads: no sink, no second
 * process, nothing that costs more than the thing measured.
 *
 * <p>Each DoFn instance keeps its figures locally and merges them in {@code @FinishBundle}, so the
 * probe adds no shared write per element (two workers would otherwise contend on one cache line).
 * Flink finishes a streaming bundle every 1,000 elements or second, so the merged figures trail
 * the pipeline by at most that.
 */
final class Probes {
  private static final Map<String, Throughput> THROUGHPUT = new ConcurrentHashMap<>();
  private static final Map<String, Latency> LATENCY = new ConcurrentHashMap<>();

  private Probes() {}

  /** Counts messages and notes when the first and the last went by. */
  static final class Throughput {
    private long count;
    private long bytes;
    private long firstNanos = Long.MAX_VALUE;
    private long lastNanos = Long.MIN_VALUE;
    private long cpuNanos;

    synchronized void merge(long count, long bytes, long firstNanos, long lastNanos, long cpuNanos) {
      this.count += count;
      this.cpuNanos += cpuNanos;
      this.bytes += bytes;
      this.firstNanos = Math.min(this.firstNanos, firstNanos);
      this.lastNanos = Math.max(this.lastNanos, lastNanos);
    }

    synchronized long count() {
      return count;
    }

    synchronized long bytes() {
      return bytes;
    }

    synchronized long firstNanos() {
      return count == 0 ? 0 : firstNanos;
    }

    synchronized long lastNanos() {
      return count == 0 ? 0 : lastNanos;
    }

    /**
     * CPU time of the threads that ran the probe (in a chained Flink task: the reader, the copies
     * between operators and the probe) per message, in microseconds. Unlike a rate, it barely moves
     * when other processes take the cores, so it is what tuning is judged by on a shared machine.
     */
    synchronized double cpuMicrosPerMessage() {
      return count == 0 ? 0 : cpuNanos / 1e3 / count;
    }

    /** Messages per second between the first and the last message seen. */
    synchronized double messagesPerSecond() {
      if (count < 2 || lastNanos <= firstNanos) {
        return 0;
      }
      return (count - 1) * 1e9 / (lastNanos - firstNanos);
    }
  }

  /** Latencies of messages whose payload starts with its publish time (System.nanoTime of this JVM). */
  static final class Latency {
    private final long[] nanos;
    private int size;
    private long dropped;

    Latency(int capacity) {
      this.nanos = new long[capacity];
    }

    synchronized void add(long[] values, int count) {
      int room = Math.min(count, nanos.length - size);
      System.arraycopy(values, 0, nanos, size, room);
      size += room;
      dropped += count - room;
    }

    synchronized int size() {
      return size;
    }

    /** The latencies recorded so far, and forgets them: each measurement window starts empty. */
    synchronized long[] drain() {
      long[] copy = java.util.Arrays.copyOf(nanos, size);
      size = 0;
      return copy;
    }
  }

  static Throughput throughput(String id) {
    return THROUGHPUT.computeIfAbsent(id, k -> new Throughput());
  }

  static Latency latency(String id) {
    return LATENCY.computeIfAbsent(id, k -> new Latency(4_000_000));
  }

  static void forget(String id) {
    THROUGHPUT.remove(id);
    LATENCY.remove(id);
  }

  static ParDo.SingleOutput<NatsMessage, Void> countInto(String id) {
    throughput(id);
    return ParDo.of(new CountFn(id));
  }

  static ParDo.SingleOutput<NatsMessage, Void> latencyInto(String id) {
    latency(id);
    return ParDo.of(new LatencyFn(id));
  }

  static long threadCpuNanos() {
    return java.lang.management.ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime();
  }

  /** The payload layout of latency messages: publish nanoTime in the first 8 bytes, then filler. */
  static byte[] timestampedPayload(long publishNanos, int size) {
    byte[] payload = new byte[Math.max(Long.BYTES, size)];
    ByteBuffer.wrap(payload).putLong(publishNanos);
    return payload;
  }

  static long publishNanosOf(byte[] payload) {
    return ByteBuffer.wrap(payload).getLong();
  }

  private static final class CountFn extends DoFn<NatsMessage, Void> {
    private final String id;
    private transient long count;
    private transient long bytes;
    private transient long first;
    private transient long last;
    /** This thread's CPU time when the probe last reported (or saw its first message); -1 before. */
    private transient long cpuMark = -1;

    CountFn(String id) {
      this.id = id;
    }

    @StartBundle
    public void startBundle() {
      count = 0;
      bytes = 0;
    }

    @ProcessElement
    public void process(@Element NatsMessage message) {
      long now = System.nanoTime();
      if (count == 0) {
        first = now;
        if (cpuMark < 0) {
          cpuMark = threadCpuNanos();
        }
      }
      last = now;
      count++;
      bytes += message.getPayload().length;
    }

    @FinishBundle
    public void finishBundle() {
      if (count > 0) {
        long cpu = threadCpuNanos();
        throughput(id).merge(count, bytes, first, last, cpu - cpuMark);
        cpuMark = cpu;
      }
    }
  }

  private static final class LatencyFn extends DoFn<NatsMessage, Void> {
    private final String id;
    private transient long[] buffer;
    private transient int size;

    LatencyFn(String id) {
      this.id = id;
    }

    @StartBundle
    public void startBundle() {
      if (buffer == null) {
        buffer = new long[16_384];
      }
      size = 0;
    }

    @ProcessElement
    public void process(@Element NatsMessage message) {
      long latency = System.nanoTime() - publishNanosOf(message.getPayload());
      if (size == buffer.length) {
        flush();
      }
      buffer[size++] = latency;
    }

    @FinishBundle
    public void finishBundle() {
      flush();
    }

    private void flush() {
      latency(id).add(buffer, size);
      size = 0;
    }
  }
}
