package dev.natsio.beam;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.values.Row;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * The DoFn behind {@link FormatRows}: serializes rows into payloads with a {@link PayloadParser}.
 *
 * <p>With a batch size above one, rows are buffered per window and a message is output when a
 * window's buffer is full (with the element that filled it, so in its window and at its
 * timestamp) or when the bundle finishes (at its earliest row's timestamp, which the watermark
 * cannot have passed while the bundle is open). Buffering per window keeps rows of different
 * windows out of one message.
 */
final class FormatRowsDoFn extends DoFn<Row, NatsMessage> {
  private static final long serialVersionUID = 1L;

  private final NatsFormat format;
  private final String subject;
  private final int batchSize;
  /** False when the rows' fields are in another order than the format's, so each row is reordered. */
  private final boolean sameFieldOrder;
  /** The field whose value becomes each message's {@code Nats-Msg-Id}, or null; only with one row per message. */
  private final @Nullable String messageIdField;

  private transient @Nullable PayloadParser parser;
  private transient @Nullable Map<BoundedWindow, Buffer> buffers;

  /** A window's rows waiting for a message, and the earliest of their timestamps. */
  private static final class Buffer {
    final List<Row> rows = new ArrayList<>();
    Instant earliest = BoundedWindow.TIMESTAMP_MAX_VALUE;
  }

  FormatRowsDoFn(NatsFormat format, String subject, int batchSize, boolean sameFieldOrder, @Nullable String messageIdField) {
    this.format = format;
    this.subject = subject;
    this.batchSize = batchSize;
    this.sameFieldOrder = sameFieldOrder;
    this.messageIdField = messageIdField;
  }

  @Setup
  public void setup() {
    parser = new PayloadParser(format);
  }

  @StartBundle
  public void startBundle() {
    buffers = new HashMap<>();
  }

  @ProcessElement
  public void process(@Element Row row, @Timestamp Instant timestamp, BoundedWindow window, OutputReceiver<NatsMessage> out) {
    Row conformed = sameFieldOrder ? row : reorder(row);
    if (batchSize == 1) {
      out.output(message(List.of(conformed)));
      return;
    }
    Buffer buffer = buffers.computeIfAbsent(window, w -> new Buffer());
    buffer.rows.add(conformed);
    if (timestamp.isBefore(buffer.earliest)) {
      buffer.earliest = timestamp;
    }
    if (buffer.rows.size() >= batchSize) {
      out.output(message(buffer.rows));
      buffers.remove(window);
    }
  }

  @FinishBundle
  public void finishBundle(FinishBundleContext context) {
    for (Map.Entry<BoundedWindow, Buffer> buffer : buffers.entrySet()) {
      context.output(message(buffer.getValue().rows), buffer.getValue().earliest, buffer.getKey());
    }
    buffers.clear();
  }

  @Teardown
  public void teardown() throws Exception {
    if (parser != null) {
      parser.close();
      parser = null;
    }
  }

  private NatsMessage message(List<Row> rows) {
    try {
      byte[] payload = parser.format(rows);
      Object id = messageIdField == null ? null : rows.get(0).getValue(messageIdField);
      return id == null
          ? NatsMessage.create(subject, payload)
          : NatsMessage.create(subject, payload, Map.of(OutgoingMessages.MESSAGE_ID_HEADER, List.of(String.valueOf(id))));
    } catch (Exception e) {
      throw new NatsIOException(
          "NatsIO.formatRows could not write " + (rows.size() == 1 ? "a row" : rows.size() + " rows") + " as "
              + format.name() + " for subject '" + subject + "': " + NatsFormat.problemOf(e),
          e);
    }
  }

  private Row reorder(Row row) {
    Schema schema = format.getSchema();
    List<Object> values = new ArrayList<>(schema.getFieldCount());
    for (String name : schema.getFieldNames()) {
      values.add(row.getValue(name));
    }
    return Row.withSchema(schema).attachValues(values);
  }
}
