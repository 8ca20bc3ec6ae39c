package dev.natsio.beam;

import java.util.ArrayList;
import java.util.List;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.errorhandling.BadRecordRouter;
import org.apache.beam.sdk.values.Row;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Duration;
import org.joda.time.Instant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The DoFn behind {@link ParsePayloads}: parses each message's payload with a {@link
 * PayloadParser} and applies the bad-record policy to each record that does not parse.
 *
 * <h2>Per record, not per message</h2>
 *
 * <p>The unit of failure is the record: a whole payload, or one line of a newline-delimited one.
 * The good lines of a payload are output even when another line is bad, and the bad line is
 * reported with its line number; its bad record carries that line as the payload, so a dead-letter
 * consumer sees exactly what failed. An Arrow stream is one record: a truncated stream gives no
 * rows at all, rather than the rows before the cut.
 *
 * <h2>Timestamps</h2>
 *
 * <p>With a timestamp field each row is output at that field's time. Beam refuses outputs earlier
 * than the input element minus {@link #getAllowedTimestampSkew()}; rather than let that fail the
 * bundle with Beam's generic message, such a row is a bad record whose description says how to
 * read so that it does not happen.
 *
 * <h2>Metrics</h2>
 *
 * <p>Counters in the {@code NatsIO} namespace: {@code rowsParsed}, {@code badRecords} (any policy)
 * and {@code badRecordsDropped}. A dropped record is also logged at WARN, the first one at once and
 * then at most one a minute per DoFn instance with the number dropped since, so a pipeline that
 * drops everything (a wrong schema, say) does not do it silently; the line names the record and the
 * problem, never the payload.
 */
final class ParsePayloadsDoFn extends DoFn<NatsMessage, Row> {
  private static final long serialVersionUID = 1L;
  private static final String METRICS_NAMESPACE = "NatsIO";
  private static final Logger LOG = LoggerFactory.getLogger(ParsePayloadsDoFn.class);
  private static final long DROP_LOG_INTERVAL_MILLIS = 60_000;

  private final NatsFormat format;
  private final Schema outputSchema;
  private final boolean withMetadata;
  private final int timestampIndex;
  private final Duration allowedSkew;
  private final ParsePayloads.BadRecordPolicy policy;
  private final Counter rowsParsed = Metrics.counter(METRICS_NAMESPACE, "rowsParsed");
  private final Counter badRecords = Metrics.counter(METRICS_NAMESPACE, "badRecords");
  private final Counter badRecordsDropped = Metrics.counter(METRICS_NAMESPACE, "badRecordsDropped");

  private transient @Nullable PayloadParser parser;
  private transient long lastDropLogMillis = Long.MIN_VALUE;
  private transient long droppedSinceLog;

  ParsePayloadsDoFn(ParsePayloads spec, Schema outputSchema) {
    this.format = spec.getFormat();
    this.outputSchema = outputSchema;
    this.withMetadata = spec.getMetadataField() != null;
    this.timestampIndex = spec.getTimestampField() == null ? -1 : format.getSchema().indexOf(spec.getTimestampField());
    this.allowedSkew = spec.getAllowedTimestampSkew();
    this.policy = spec.getBadRecordPolicy();
  }

  @Setup
  public void setup() {
    parser = new PayloadParser(format);
  }

  @ProcessElement
  public void process(@Element NatsMessage message, @Timestamp Instant timestamp, MultiOutputReceiver out) throws Exception {
    Row metadata = withMetadata ? metadataOf(message) : null;
    for (PayloadParser.Parsed record : parser.parse(message.getPayload())) {
      if (record.rows == null) {
        bad(out, message, record, record.problem(), record.error);
        continue;
      }
      for (Row row : record.rows) {
        Instant rowTime = timestamp;
        if (timestampIndex >= 0) {
          try {
            Instant fieldTime = EventTimes.timeOf(row, timestampIndex);
            rowTime = fieldTime == null ? timestamp : fieldTime;
          } catch (IllegalArgumentException e) {
            bad(out, message, record, e.getMessage(), e);
            continue;
          }
          if (rowTime.isBefore(timestamp.minus(allowedSkew))) {
            bad(out, message, record,
                "the row's time " + rowTime + " is before its message's timestamp " + timestamp
                    + (allowedSkew.getMillis() > 0 ? " by more than the allowed skew " + allowedSkew : "")
                    + "; read with NatsIO.read().withTimestampFn(format.timestampFn(\"" + row.getSchema().getField(timestampIndex).getName()
                    + "\"), maxDelay) so messages carry their records' time", null);
            continue;
          }
        }
        out.get(ParsePayloads.ROWS).outputWithTimestamp(metadata == null ? row : withMetadata(row, metadata), rowTime);
        rowsParsed.inc();
      }
    }
  }

  @Teardown
  public void teardown() throws Exception {
    if (parser != null) {
      parser.close();
      parser = null;
    }
  }

  @Override
  @SuppressWarnings("deprecation") // Still how a DoFn moves outputs back in time; see the class comment.
  public Duration getAllowedTimestampSkew() {
    return allowedSkew;
  }

  private void bad(MultiOutputReceiver out, NatsMessage message, PayloadParser.Parsed record, String problem,
      @Nullable Exception error) throws Exception {
    badRecords.inc();
    String description = describe(message, record, problem);
    switch (policy) {
      case DROP:
        badRecordsDropped.inc();
        logDropped(description);
        return;
      case ROUTE:
        NatsMessage failed = record.line == 0 ? message
            : NatsMessage.of(message.getSubject(), record.bytes, message.getHeaders(), message.getStream(),
                message.getSequence(), message.getTimestamp());
        BadRecordRouter.RECORDING_ROUTER.route(out, failed, NatsMessageCoder.of(), error, description);
        return;
      case FAIL:
      default:
        throw new NatsIOException(
            description + ". To keep going instead, give NatsIO.parsePayloads(...) withBadRecordErrorHandler(...) or"
                + " withDropBadRecords().",
            error);
    }
  }

  private void logDropped(String description) {
    droppedSinceLog++;
    long now = System.currentTimeMillis();
    if (lastDropLogMillis != Long.MIN_VALUE && now - lastDropLogMillis < DROP_LOG_INTERVAL_MILLIS) {
      return;
    }
    LOG.warn("Dropped {} bad record(s) (withDropBadRecords) since the last such line; the latest: {}. They are"
        + " counted in NatsIO/badRecordsDropped; use withBadRecordErrorHandler(...) to keep them.",
        droppedSinceLog, description);
    lastDropLogMillis = now;
    droppedSinceLog = 0;
  }

  /**
   * Where the record came from and what is wrong with it. Not the payload, which may hold personal
   * data and ends up in logs: the bad record carries it for whoever needs it.
   */
  private String describe(NatsMessage message, PayloadParser.Parsed record, String problem) {
    String where = message.getStream() == null
        ? "the message on subject '" + message.getSubject() + "'"
        : "the message at stream '" + message.getStream() + "' sequence " + message.getSequence() + " (subject '"
            + message.getSubject() + "')";
    String what = record.line == 0 ? "the payload of " + where + " (" + record.bytes.length + " bytes)"
        : "line " + record.line + " of " + where;
    return "Could not parse " + what + " as " + format.name() + ": " + problem;
  }

  private static Row metadataOf(NatsMessage message) {
    return Row.withSchema(ParsePayloads.METADATA_SCHEMA)
        .attachValues(message.getSubject(), message.getStream(), message.getSequence(), message.getTimestamp(),
            message.getHeaders());
  }

  private Row withMetadata(Row row, Row metadata) {
    List<Object> values = new ArrayList<>(row.getValues());
    values.add(metadata);
    return Row.withSchema(outputSchema).attachValues(values);
  }
}
