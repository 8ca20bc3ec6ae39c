package dev.natsio.beam;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.apache.beam.sdk.coders.AtomicCoder;
import org.apache.beam.sdk.transforms.DoFn;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * Messages a {@link JetStreamBatchSource} read in one {@code advance()}, each with its element
 * timestamp, in stream order; {@link Unbatch} turns them back into one element per message.
 *
 * <h2>Why batches</h2>
 *
 * <p>Beam's Flink runner does two things per element a source emits that cost more than reading
 * the message: it copies every Beam metric of the task into Flink's after each {@code advance()}
 * (3.4 to 4 µs here, whatever the reader did), and, unless {@code --fasterCopy} is set, it clones
 * the element through its coder before each chained operator (the source's output passes two:
 * Beam's record-id strip, then the next step). A batch pays the metrics sync once and its clones
 * as one byte copy, so with the runner's default options the read costs about what it costs with
 * {@code --fasterCopy --disableMetrics}; see docs/benchmarks.md.
 *
 * <h2>Two forms</h2>
 *
 * <p>A batch the reader built holds its messages as objects: with {@code fasterCopy} Flink hands
 * it on as it is and nothing is encoded. Its coder writes the messages ({@link NatsMessageCoder}
 * each, back to back) and decodes to the encoded form, which later clones copy as one array;
 * {@link #messages()} decodes it where the messages are wanted.
 */
final class NatsMessageBatch {
  private @Nullable List<NatsMessage> messages;
  private byte @Nullable [] encodedMessages;
  private final long[] timestampMillis;

  NatsMessageBatch(List<NatsMessage> messages, long[] timestampMillis) {
    this.messages = messages;
    this.timestampMillis = timestampMillis;
  }

  private NatsMessageBatch(byte[] encodedMessages, long[] timestampMillis) {
    this.encodedMessages = encodedMessages;
    this.timestampMillis = timestampMillis;
  }

  int size() {
    return timestampMillis.length;
  }

  /** The element timestamp of message {@code i}. */
  Instant timestamp(int i) {
    return Instant.ofEpochMilli(timestampMillis[i]);
  }

  /** The messages in stream order, decoded on first use when the batch came through its coder. */
  List<NatsMessage> messages() throws IOException {
    if (messages == null) {
      ByteBuffer encoded = ByteBuffer.wrap(encodedMessages);
      List<NatsMessage> decoded = new ArrayList<>(size());
      for (int i = 0; i < size(); i++) {
        decoded.add(NatsMessageCoder.decode(encoded));
      }
      if (encoded.hasRemaining()) {
        throw new IOException("A batch of " + size() + " messages with " + encoded.remaining() + " bytes after them: not a NatsMessageBatch encoding");
      }
      messages = decoded;
    }
    return messages;
  }

  /**
   * Emits each message of a batch with its own timestamp. A batch's timestamp is the earliest of
   * its messages', so none is output before its input: no timestamp skew is needed.
   */
  static final class Unbatch extends DoFn<NatsMessageBatch, NatsMessage> {
    private static final long serialVersionUID = 1L;

    @ProcessElement
    public void processElement(@Element NatsMessageBatch batch, OutputReceiver<NatsMessage> out) throws IOException {
      List<NatsMessage> messages = batch.messages();
      for (int i = 0; i < messages.size(); i++) {
        out.outputWithTimestamp(messages.get(i), batch.timestamp(i));
      }
    }
  }

  /**
   * The message count, each timestamp's millis, then the length and bytes of the messages as
   * {@link NatsMessageCoder} wrote them one after another.
   */
  static final class Coder extends AtomicCoder<NatsMessageBatch> {
    private static final long serialVersionUID = 1L;
    private static final Coder INSTANCE = new Coder();

    static Coder of() {
      return INSTANCE;
    }

    @Override
    public void encode(NatsMessageBatch batch, OutputStream outStream) throws IOException {
      // A decoded batch is written as the bytes it was decoded from; one the reader built, message
      // by message straight into the stream, without first gathering them in an array of its own.
      byte[][] messages = null;
      long length;
      if (batch.encodedMessages != null) {
        length = batch.encodedMessages.length;
      } else {
        messages = new byte[batch.size()][];
        length = 0;
        for (int i = 0; i < messages.length; i++) {
          messages[i] = NatsMessageCoder.toBytes(batch.messages.get(i));
          length += messages[i].length;
        }
        if (length > Integer.MAX_VALUE - 8) {
          throw new IOException("A batch of " + length + " encoded bytes: too large for one array");
        }
      }
      ByteBuffer head = ByteBuffer.allocate(4 + 8 * batch.size() + 4);
      head.putInt(batch.size());
      for (long millis : batch.timestampMillis) {
        head.putLong(millis);
      }
      head.putInt((int) length);
      outStream.write(head.array());
      if (messages == null) {
        outStream.write(batch.encodedMessages);
      } else {
        for (byte[] message : messages) {
          outStream.write(message);
        }
      }
    }

    @Override
    public NatsMessageBatch decode(InputStream inStream) throws IOException {
      DataInputStream in = new DataInputStream(inStream);
      int size = in.readInt();
      if (size < 0) {
        throw new IOException("A batch of " + size + " messages: not a NatsMessageBatch encoding");
      }
      byte[] head = new byte[8 * size + 4];
      in.readFully(head);
      ByteBuffer fields = ByteBuffer.wrap(head);
      long[] timestampMillis = new long[size];
      for (int i = 0; i < size; i++) {
        timestampMillis[i] = fields.getLong();
      }
      int length = fields.getInt();
      if (length < 0) {
        throw new IOException("Batch messages of " + length + " bytes: not a NatsMessageBatch encoding");
      }
      byte[] encoded = new byte[length];
      in.readFully(encoded);
      return new NatsMessageBatch(encoded, timestampMillis);
    }
  }
}
