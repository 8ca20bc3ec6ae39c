package dev.natsio.beam.schematransforms;

import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.NatsMessageCoder;
import java.nio.charset.StandardCharsets;
import org.apache.beam.sdk.coders.CoderException;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.transforms.providers.ErrorHandling;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.SimpleFunction;
import org.apache.beam.sdk.transforms.errorhandling.BadRecord;
import org.apache.beam.sdk.util.CoderUtils;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.Row;

/**
 * The sink of a bad-record error handler that turns NatsIO's {@link BadRecord}s into the error rows
 * Beam's YAML-facing providers output ({@link ErrorHandling#errorSchemaBytes()}): {@code
 * failed_row}, the message's payload, and {@code error_message}, the description NatsIO gives (which
 * names stream, sequence, subject and problem, never the payload).
 *
 * <p>NatsIO's parse and write steps record the {@link NatsMessage} itself; a record encoded some
 * other way keeps its human-readable form as the failed row, so nothing is lost.
 */
final class ErrorRows extends PTransform<PCollection<BadRecord>, PCollection<Row>> {
  private static final long serialVersionUID = 1L;

  static final Schema SCHEMA = ErrorHandling.errorSchemaBytes();

  @Override
  public PCollection<Row> expand(PCollection<BadRecord> badRecords) {
    return badRecords.apply("To error rows", MapElements.via(new ToRow())).setRowSchema(SCHEMA);
  }

  private static final class ToRow extends SimpleFunction<BadRecord, Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public Row apply(BadRecord badRecord) {
      return Row.withSchema(SCHEMA)
          .withFieldValue("failed_row", payloadOf(badRecord.getRecord()))
          .withFieldValue("error_message", badRecord.getFailure().getDescription())
          .build();
    }
  }

  private static byte[] payloadOf(BadRecord.Record record) {
    byte[] encoded = record.getEncodedRecord();
    if (encoded != null) {
      try {
        return CoderUtils.decodeFromByteArray(NatsMessageCoder.of(), encoded).getPayload();
      } catch (CoderException | RuntimeException e) {
        // Not a NatsMessage: fall through to the readable form.
      }
    }
    String readable = record.getHumanReadableJsonRecord();
    return readable == null ? new byte[0] : readable.getBytes(StandardCharsets.UTF_8);
  }
}
