package dev.natsio.beam;

import static java.util.Objects.requireNonNull;

import com.google.auto.value.AutoValue;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.Row;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * Serializes a {@code PCollection<Row>} into {@link NatsMessage}s with a {@link NatsFormat}, for
 * {@link NatsIO#write()}. Made by {@link NatsIO#formatRows(NatsFormat, String)}.
 *
 * <pre>{@code
 * rows.apply(NatsIO.formatRows(NatsFormat.arrow(schema), "metrics.batches").withBatchSize(1_000))
 *     .apply(NatsIO.write().withServers(url).withJetStream());
 * }</pre>
 *
 * <p>The rows' schema must be the format's (fields in any order). JSON, Avro, string and bytes
 * formats write one row per message. An Arrow format, and any newline-delimited one, write up to
 * {@link #withBatchSize} rows per message (default {@value #DEFAULT_BATCH_SIZE}): rows are
 * gathered per bundle and window, and a bundle's last message may hold fewer. Keep batch size times
 * row size below the server's {@code max_payload} (1 MiB by default), or the write refuses the
 * message.
 *
 * <p>Batches depend on how the runner cuts bundles, so a retried bundle may batch differently: a
 * message id derived from the payload then differs between attempts. For effectively-once writes
 * through message ids, write one row per message.
 *
 * <p>A row the format cannot serialize (a value the format cannot hold, a line break in a
 * newline-delimited string) fails the bundle with a {@link NatsIOException} naming the problem.
 */
@AutoValue
public abstract class FormatRows extends PTransform<PCollection<Row>, PCollection<NatsMessage>> {
  private static final long serialVersionUID = 1L;

  /** Rows per message of a batching format, unless {@link #withBatchSize} says otherwise. */
  public static final int DEFAULT_BATCH_SIZE = 500;

  abstract NatsFormat getFormat();

  abstract String getSubject();

  abstract @Nullable Integer getBatchSize();

  abstract @Nullable String getMessageIdField();

  abstract Builder toBuilder();

  static FormatRows of(NatsFormat format, String subject) {
    requireNonNull(format, "format");
    if (subject == null || subject.isBlank()) {
      throw new IllegalArgumentException("NatsIO.formatRows needs a subject to publish to, e.g. \"orders.rows\".");
    }
    return new AutoValue_FormatRows.Builder().setFormat(format).setSubject(subject).build();
  }

  /**
   * At most this many rows per message (default {@value #DEFAULT_BATCH_SIZE}), for the Arrow
   * format and newline-delimited formats; other formats hold one row per message.
   */
  public FormatRows withBatchSize(int batchSize) {
    if (batchSize < 1) {
      throw new IllegalArgumentException("NatsIO.formatRows withBatchSize(" + batchSize + ") must be at least 1.");
    }
    if (batchSize > 1 && !batches(getFormat())) {
      throw new IllegalArgumentException(
          "NatsIO.formatRows withBatchSize(" + batchSize + "): a " + getFormat().name() + " payload holds one row;"
              + " only Arrow and newline-delimited formats hold several.");
    }
    return toBuilder().setBatchSize(batchSize).build();
  }

  /**
   * Sets each message's {@code Nats-Msg-Id} header to the value of the row's field {@code field}
   * (as text; a null value sets none), so a JetStream write without its own {@link
   * NatsIO.Write#withMessageIdFn} stores each row once even when a bundle or a whole pipeline is
   * re-run within the stream's duplicate window. The field stays in the payload. Only for formats
   * that write one row per message: an id cannot stand for a batch.
   */
  public FormatRows withMessageIdField(String field) {
    if (field == null || !getFormat().getSchema().hasField(field)) {
      throw new IllegalArgumentException(
          "NatsIO.formatRows withMessageIdField(" + (field == null ? "null" : "\"" + field + "\"") + "): the format's schema has"
              + " no such field; pick one of " + getFormat().getSchema().getFieldNames() + ".");
    }
    if (batches(getFormat())) {
      throw new IllegalArgumentException(
          "NatsIO.formatRows withMessageIdField: a " + getFormat().name() + (getFormat().isNewlineDelimited() ? " newline-delimited" : "")
              + " payload holds several rows, and one message id cannot stand for them; use a format that writes one row per"
              + " message.");
    }
    return toBuilder().setMessageIdField(field).build();
  }

  int effectiveBatchSize() {
    if (!batches(getFormat())) {
      return 1;
    }
    return getBatchSize() == null ? DEFAULT_BATCH_SIZE : getBatchSize();
  }

  private static boolean batches(NatsFormat format) {
    return format.holdsManyRecords() || format.isNewlineDelimited();
  }

  @Override
  public PCollection<NatsMessage> expand(PCollection<Row> input) {
    Schema expected = getFormat().getSchema();
    if (!input.hasSchema()) {
      throw new IllegalArgumentException(
          "NatsIO.formatRows needs a PCollection<Row> with a schema: call setRowSchema(...) on it.");
    }
    Schema actual = input.getSchema();
    if (!actual.equivalent(expected)) {
      throw new IllegalArgumentException(
          "NatsIO.formatRows: the rows' schema " + actual.getFieldNames() + " is not the format's " + expected.getFieldNames()
              + " (same field names and types needed): " + actual + " vs " + expected);
    }
    return input
        .apply("Format " + getFormat().name(), ParDo.of(new FormatRowsDoFn(getFormat(), getSubject(), effectiveBatchSize(),
            actual.equals(expected), getMessageIdField())))
        .setCoder(NatsMessageCoder.of());
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("format", getFormat().name()).withLabel("Payload format"));
    builder.add(DisplayData.item("newlineDelimited", getFormat().isNewlineDelimited()));
    builder.add(DisplayData.item("subject", getSubject()).withLabel("NATS subject"));
    builder.add(DisplayData.item("batchSize", effectiveBatchSize()));
    builder.addIfNotNull(DisplayData.item("messageIdField", getMessageIdField()));
  }

  @AutoValue.Builder
  abstract static class Builder {
    abstract Builder setFormat(NatsFormat format);

    abstract Builder setSubject(String subject);

    abstract Builder setBatchSize(@Nullable Integer batchSize);

    abstract Builder setMessageIdField(@Nullable String messageIdField);

    abstract FormatRows build();
  }
}
