package dev.natsio.beam;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.NoSuchElementException;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.io.UnboundedSource;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * A {@link JetStreamUnboundedSource} whose reader hands the runner a {@link NatsMessageBatch} per
 * {@code advance()}: what {@link NatsIO.Read} runs where it takes the source form, followed by
 * {@link NatsMessageBatch.Unbatch}.
 *
 * <h2>How a batch is made</h2>
 *
 * <p>The first message of a batch is read as the message source reads it (waiting up to its poll);
 * the batch then takes the messages the consumer already holds, without waiting, up to {@link
 * #MAX_MESSAGES} or {@link #MAX_PAYLOAD_BYTES}. So a busy stream moves in batches of up to the
 * consumer's pull, and a quiet one message at a time, with no added latency. Its timestamp is the
 * earliest of its messages'.
 *
 * <h2>Position, watermark, splits</h2>
 *
 * <p>All those of the message source, whose reader this one drives: a batch is emitted whole before
 * the runner can take a checkpoint mark, so the mark's next sequence is exact, and the watermark
 * the runner reads after a batch is the message reader's after its last message. Splits are the
 * message source's splits, each wrapped; the checkpoint mark and its coder are the same.
 */
final class JetStreamBatchSource extends UnboundedSource<NatsMessageBatch, JetStreamCheckpointMark> {
  private static final long serialVersionUID = 1L;
  /**
   * The most messages in a batch: bounds the work of one call on the task thread, which a
   * checkpoint barrier waits for (a batch goes through the steps chained after the read before the
   * barrier does: 1,000 messages through a step taking 1 ms each held checkpoints a second), and,
   * with the byte bound, a batch's memory. Beam's per-record costs are already small at 100.
   */
  static final int MAX_MESSAGES = 100;
  static final long MAX_PAYLOAD_BYTES = 4L << 20;

  private final JetStreamUnboundedSource messages;

  JetStreamBatchSource(JetStreamUnboundedSource messages) {
    this.messages = messages;
  }

  JetStreamUnboundedSource messageSource() {
    return messages;
  }

  @Override
  public List<JetStreamBatchSource> split(int desiredNumSplits, PipelineOptions options) {
    List<JetStreamBatchSource> splits = new ArrayList<>();
    for (JetStreamUnboundedSource split : messages.split(desiredNumSplits, options)) {
      splits.add(new JetStreamBatchSource(split));
    }
    return splits;
  }

  @Override
  public UnboundedReader<NatsMessageBatch> createReader(PipelineOptions options, @Nullable JetStreamCheckpointMark mark) {
    return new Reader(this, new JetStreamUnboundedReader(messages, mark));
  }

  @Override
  public Coder<JetStreamCheckpointMark> getCheckpointMarkCoder() {
    return messages.getCheckpointMarkCoder();
  }

  @Override
  public Coder<NatsMessageBatch> getOutputCoder() {
    return NatsMessageBatch.Coder.of();
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    messages.populateDisplayData(builder);
  }

  /** Drives a {@link JetStreamUnboundedReader}, gathering its messages into batches. */
  static final class Reader extends UnboundedReader<NatsMessageBatch> {
    private final JetStreamBatchSource source;
    private final JetStreamUnboundedReader messages;
    private @Nullable NatsMessageBatch current;
    private @Nullable Instant currentTimestamp;

    Reader(JetStreamBatchSource source, JetStreamUnboundedReader messages) {
      this.source = source;
      this.messages = messages;
    }

    @Override
    public boolean start() throws IOException {
      return gather(messages.start());
    }

    @Override
    public boolean advance() throws IOException {
      return gather(messages.advance());
    }

    /** After the message reader's first answer: the batch it starts, filled from what is buffered. */
    private boolean gather(boolean first) throws IOException {
      current = null;
      currentTimestamp = null;
      if (!first) {
        return false;
      }
      // Sized for a full batch: growing them showed in the read's allocation profile.
      List<NatsMessage> batch = new ArrayList<>(MAX_MESSAGES);
      long[] timestamps = new long[MAX_MESSAGES];
      long payloadBytes = 0;
      long earliest = Long.MAX_VALUE;
      do {
        NatsMessage message = messages.getCurrent();
        long timestamp = messages.getCurrentTimestamp().getMillis();
        timestamps[batch.size()] = timestamp;
        earliest = Math.min(earliest, timestamp);
        batch.add(message);
        payloadBytes += message.getPayload().length;
      } while (batch.size() < MAX_MESSAGES && payloadBytes < MAX_PAYLOAD_BYTES && messages.advanceBuffered());
      messages.reportReads();
      current = new NatsMessageBatch(batch, batch.size() == MAX_MESSAGES ? timestamps : Arrays.copyOf(timestamps, batch.size()));
      currentTimestamp = new Instant(earliest);
      return true;
    }

    @Override
    public NatsMessageBatch getCurrent() {
      if (current == null) {
        throw new NoSuchElementException("No current batch: advance() has not returned true");
      }
      return current;
    }

    @Override
    public Instant getCurrentTimestamp() {
      if (currentTimestamp == null) {
        throw new NoSuchElementException("No current batch: advance() has not returned true");
      }
      return currentTimestamp;
    }

    @Override
    public Instant getWatermark() {
      return messages.getWatermark();
    }

    @Override
    public JetStreamCheckpointMark getCheckpointMark() {
      return messages.getCheckpointMark();
    }

    @Override
    public long getSplitBacklogBytes() {
      return messages.getSplitBacklogBytes();
    }

    @Override
    public JetStreamBatchSource getCurrentSource() {
      return source;
    }

    @Override
    public void close() throws IOException {
      messages.close();
    }
  }
}
