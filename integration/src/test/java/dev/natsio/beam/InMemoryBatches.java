package dev.natsio.beam;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.NoSuchElementException;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.SerializableCoder;
import org.apache.beam.sdk.io.Read;
import org.apache.beam.sdk.io.UnboundedSource;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * For the benchmarks: {@link NatsIO#read()}'s Flink source form with NATS taken out. An unbounded
 * source hands the runner {@link NatsMessageBatch}es of messages built in memory, up to {@link
 * JetStreamBatchSource#MAX_MESSAGES} per {@code advance()}, followed by {@link
 * NatsMessageBatch.Unbatch}, as {@code NatsIO.Read#expand} chains them. What a message costs here
 * is what the runner and NatsIO's batch plumbing cost without reading anything: the floor under the
 * read's figures with the same runner options.
 *
 * <p>The messages are 1,000 built once and handed out in turn (with the read's stream, subject,
 * sequence and timestamp fields), so building them is not charged; a real read also builds each
 * message from jnats's. One split; the checkpoint mark is the next index.
 */
public final class InMemoryBatches extends PTransform<PBegin, PCollection<NatsMessage>> {
  private static final long serialVersionUID = 1L;
  /** Messages per batch when the runner keeps up: NatsIO's own bound. */
  public static final int MESSAGES_PER_BATCH = JetStreamBatchSource.MAX_MESSAGES;
  private final long count;
  private final int payloadBytes;

  private InMemoryBatches(long count, int payloadBytes) {
    this.count = count;
    this.payloadBytes = payloadBytes;
  }

  /** {@code count} messages of {@code payloadBytes} each, then nothing more (the job runs until cancelled). */
  public static InMemoryBatches of(long count, int payloadBytes) {
    return new InMemoryBatches(count, payloadBytes);
  }

  @Override
  public PCollection<NatsMessage> expand(PBegin input) {
    return input
        .apply("Read in-memory batches", Read.from(new Source(count, payloadBytes)))
        .apply("Messages", ParDo.of(new NatsMessageBatch.Unbatch()))
        .setCoder(NatsMessageCoder.of());
  }

  static final class Position implements UnboundedSource.CheckpointMark, Serializable {
    private static final long serialVersionUID = 1L;
    final long next;

    Position(long next) {
      this.next = next;
    }

    @Override
    public void finalizeCheckpoint() {}
  }

  static final class Source extends UnboundedSource<NatsMessageBatch, Position> {
    private static final long serialVersionUID = 1L;
    private final long count;
    private final int payloadBytes;

    Source(long count, int payloadBytes) {
      this.count = count;
      this.payloadBytes = payloadBytes;
    }

    @Override
    public List<Source> split(int desiredNumSplits, PipelineOptions options) {
      return List.of(this);
    }

    @Override
    public UnboundedReader<NatsMessageBatch> createReader(PipelineOptions options, @Nullable Position mark) {
      return new BatchReader(this, mark == null ? 0 : mark.next);
    }

    @Override
    public Coder<Position> getCheckpointMarkCoder() {
      return SerializableCoder.of(Position.class);
    }

    @Override
    public Coder<NatsMessageBatch> getOutputCoder() {
      return NatsMessageBatch.Coder.of();
    }
  }

  private static final class BatchReader extends UnboundedSource.UnboundedReader<NatsMessageBatch> {
    private static final int DISTINCT = 1_000;
    private static final long FIRST_MILLIS = 1_700_000_000_000L;
    private final Source source;
    private final NatsMessage[] messages = new NatsMessage[DISTINCT];
    private long next;
    private @Nullable NatsMessageBatch current;
    private Instant watermark = BoundedWindow.TIMESTAMP_MIN_VALUE;

    BatchReader(Source source, long next) {
      this.source = source;
      this.next = next;
      for (int i = 0; i < DISTINCT; i++) {
        byte[] payload = new byte[source.payloadBytes];
        if (payload.length > 0) {
          payload[0] = (byte) i; // Messages differ, as a stream's do.
        }
        messages[i] = NatsMessage.of("floor.x", payload, Collections.emptyMap(), "floor", i + 1, new Instant(FIRST_MILLIS + i));
      }
    }

    @Override
    public boolean start() {
      return advance();
    }

    @Override
    public boolean advance() {
      current = null;
      int size = (int) Math.min(MESSAGES_PER_BATCH, source.count - next);
      if (size <= 0) {
        return false;
      }
      List<NatsMessage> batch = new ArrayList<>(size);
      long[] timestamps = new long[size];
      for (int i = 0; i < size; i++) {
        batch.add(messages[(int) ((next + i) % DISTINCT)]);
        timestamps[i] = FIRST_MILLIS + next + i;
      }
      next += size;
      current = new NatsMessageBatch(batch, timestamps);
      watermark = new Instant(FIRST_MILLIS + next - 1);
      return true;
    }

    @Override
    public NatsMessageBatch getCurrent() {
      if (current == null) {
        throw new NoSuchElementException();
      }
      return current;
    }

    @Override
    public Instant getCurrentTimestamp() {
      return getCurrent().timestamp(0); // A batch's timestamp is its earliest message's, as in JetStreamBatchSource.
    }

    @Override
    public Instant getWatermark() {
      return watermark;
    }

    @Override
    public Position getCheckpointMark() {
      return new Position(next);
    }

    @Override
    public UnboundedSource<NatsMessageBatch, ?> getCurrentSource() {
      return source;
    }

    @Override
    public void close() {}
  }
}
