package dev.natsio.beam;

import static java.util.Objects.requireNonNull;

import com.google.auto.value.AutoValue;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.Schema.FieldType;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.transforms.errorhandling.BadRecord;
import org.apache.beam.sdk.transforms.errorhandling.BadRecordRouter;
import org.apache.beam.sdk.transforms.errorhandling.ErrorHandler;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.Row;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Duration;

/**
 * Parses the payloads of a {@code PCollection<NatsMessage>} into a {@code PCollection<Row>} with a
 * {@link NatsFormat}'s schema. Made by {@link NatsIO#parsePayloads(NatsFormat)}.
 *
 * <pre>{@code
 * PCollection<Row> rows = pipeline
 *     .apply(NatsIO.read().withServers(url).withStream("orders"))
 *     .apply(NatsIO.parsePayloads(NatsFormat.json(schema))
 *         .withMetadata()                              // adds a "nats" row: subject, stream, sequence, ...
 *         .withBadRecordErrorHandler(errorHandler));   // or withDropBadRecords(); default: fail
 * }</pre>
 *
 * <p>It is a transform of its own, not an option of the read, so it works the same after {@link
 * NatsIO#read()}, after {@link NatsIO#readSourceDescriptors()} and on messages from anywhere else,
 * and the read keeps its {@code PCollection<NatsMessage>} output for pipelines that want both.
 *
 * <h2>Rows</h2>
 *
 * <p>Each payload gives one row, or one per line of a newline-delimited format, or one per record
 * of an Arrow stream. Rows keep their message's timestamp and window unless {@link
 * #withTimestampField} says otherwise. With {@link #withMetadata()} each row also has a field
 * {@value #DEFAULT_METADATA_FIELD} of schema {@link #METADATA_SCHEMA}: the message's {@code
 * subject}, {@code stream} (null for Core messages), {@code sequence} (0 for Core), {@code
 * timestamp} (publish time for JetStream) and {@code headers}.
 *
 * <h2>Bad records</h2>
 *
 * <p>A record that does not parse, or whose event time is unusable, is a bad record. By default
 * the bundle fails with a {@link NatsIOException} naming the stream, sequence, subject, line and
 * problem. The payload itself is left out of the message, since it may hold personal data; only
 * what a parser's own message quotes remains, such as an unexpected JSON token. {@link #withDropBadRecords()} drops it and counts it in the {@code
 * NatsIO} counter {@code badRecordsDropped}; {@link #withBadRecordErrorHandler} sends it to Beam's
 * bad-record handler as a {@link BadRecord} whose record is the message ({@link NatsMessageCoder}:
 * subject, headers, stream, sequence and the payload, or just the bad line of a newline-delimited
 * one) and whose description says the same as the failure would. Counters {@code rowsParsed} and
 * {@code badRecords} count every policy's rows and bad records.
 *
 * <h2>Event time</h2>
 *
 * <p>{@link #withTimestampField} stamps each row with the time in one of its fields. The element
 * timestamps and the watermark come from the read, though, and a DoFn may not move an element
 * before its input's timestamp. The correct set-up reads with the format's timestamp function, so
 * each message is stamped with its earliest record's time and the read's watermark follows event
 * time:
 *
 * <pre>{@code
 * NatsFormat json = NatsFormat.json(schema);
 * pipeline
 *     .apply(NatsIO.read().withServers(url).withStream("orders")
 *         .withTimestampFn(json.timestampFn("ts"), Duration.standardMinutes(1)))
 *     .apply(NatsIO.parsePayloads(json).withTimestampField("ts"));
 * }</pre>
 *
 * <p>Without it (publish-time timestamps), a row whose event time is earlier than its message's
 * publish time can only be output if {@link #withTimestampField(String, Duration)} allows that much
 * skew, and it may then be behind the watermark: late, and dropped by windows whose allowed
 * lateness is shorter than the skew. A row further behind is a bad record.
 */
@AutoValue
public abstract class ParsePayloads extends PTransform<PCollection<NatsMessage>, PCollection<Row>> {
  private static final long serialVersionUID = 1L;

  /** The name of the metadata field {@link #withMetadata()} adds. */
  public static final String DEFAULT_METADATA_FIELD = "nats";

  /** The schema of the metadata field: the message's properties other than its payload. */
  public static final Schema METADATA_SCHEMA =
      Schema.builder()
          .addStringField("subject")
          .addNullableField("stream", FieldType.STRING)
          .addInt64Field("sequence")
          .addNullableField("timestamp", FieldType.DATETIME)
          .addMapField("headers", FieldType.STRING, FieldType.array(FieldType.STRING))
          .build();

  static final TupleTag<Row> ROWS = new TupleTag<Row>() {};

  /** What happens to a record that cannot be parsed. */
  enum BadRecordPolicy {
    FAIL,
    DROP,
    ROUTE
  }

  abstract NatsFormat getFormat();

  abstract @Nullable String getMetadataField();

  abstract @Nullable String getTimestampField();

  abstract Duration getAllowedTimestampSkew();

  abstract BadRecordPolicy getBadRecordPolicy();

  abstract @Nullable ErrorHandler<BadRecord, ?> getBadRecordErrorHandler();

  abstract Builder toBuilder();

  static ParsePayloads of(NatsFormat format) {
    return new AutoValue_ParsePayloads.Builder()
        .setFormat(requireNonNull(format, "format"))
        .setAllowedTimestampSkew(Duration.ZERO)
        .setBadRecordPolicy(BadRecordPolicy.FAIL)
        .build();
  }

  /** Adds the message's metadata as a field {@value #DEFAULT_METADATA_FIELD} of schema {@link #METADATA_SCHEMA}. */
  public ParsePayloads withMetadata() {
    return withMetadata(DEFAULT_METADATA_FIELD);
  }

  /** Adds the message's metadata as a field {@code fieldName} of schema {@link #METADATA_SCHEMA}. */
  public ParsePayloads withMetadata(String fieldName) {
    if (fieldName == null || fieldName.isEmpty()) {
      throw new IllegalArgumentException("parsePayloads().withMetadata needs a field name, e.g. \"nats\".");
    }
    if (getFormat().getSchema().hasField(fieldName)) {
      throw new IllegalArgumentException(
          "parsePayloads().withMetadata(\"" + fieldName + "\"): the format's schema already has a field '" + fieldName
              + "'; pick another name.");
    }
    return toBuilder().setMetadataField(fieldName).build();
  }

  /**
   * Stamps each row with the time in {@code field} (DATETIME, INT64 milliseconds since the epoch,
   * or ISO-8601 STRING); a row whose field is null keeps its message's timestamp. A row may not be
   * earlier than its message's timestamp: read with {@code withTimestampFn(format.timestampFn(field),
   * maxDelay)} so it never is (see the class comment).
   */
  public ParsePayloads withTimestampField(String field) {
    return withTimestampField(field, Duration.ZERO);
  }

  /**
   * Like {@link #withTimestampField(String)}, allowing rows up to {@code allowedSkew} earlier than
   * their message's timestamp. Such rows may be behind the watermark, hence late for windows with
   * less allowed lateness; rows further behind are bad records.
   */
  public ParsePayloads withTimestampField(String field, Duration allowedSkew) {
    EventTimes.checkField(getFormat().getSchema(), field);
    requireNonNull(allowedSkew, "allowedSkew");
    if (allowedSkew.isShorterThan(Duration.ZERO)) {
      throw new IllegalArgumentException("parsePayloads().withTimestampField: allowedSkew " + allowedSkew + " is negative.");
    }
    return toBuilder().setTimestampField(field).setAllowedTimestampSkew(allowedSkew).build();
  }

  /** Drops bad records, counting them in the {@code NatsIO} counter {@code badRecordsDropped}. */
  public ParsePayloads withDropBadRecords() {
    return toBuilder().setBadRecordPolicy(BadRecordPolicy.DROP).setBadRecordErrorHandler(null).build();
  }

  /**
   * Sends bad records to {@code errorHandler} as {@link BadRecord}s carrying the message (subject,
   * headers, stream, sequence, payload) and a description of the problem.
   */
  public ParsePayloads withBadRecordErrorHandler(ErrorHandler<BadRecord, ?> errorHandler) {
    return toBuilder()
        .setBadRecordPolicy(BadRecordPolicy.ROUTE)
        .setBadRecordErrorHandler(requireNonNull(errorHandler, "errorHandler"))
        .build();
  }

  /** The schema of the output rows: the format's, plus the metadata field if asked for. */
  public Schema getOutputSchema() {
    if (getMetadataField() == null) {
      return getFormat().getSchema();
    }
    return Schema.builder()
        .addFields(getFormat().getSchema().getFields())
        .addRowField(getMetadataField(), METADATA_SCHEMA)
        .build();
  }

  @Override
  public PCollection<Row> expand(PCollection<NatsMessage> input) {
    Schema outputSchema = getOutputSchema();
    PCollectionTuple outputs =
        input.apply("Parse " + getFormat().name(),
            ParDo.of(new ParsePayloadsDoFn(this, outputSchema))
                .withOutputTags(ROWS, TupleTagList.of(BadRecordRouter.BAD_RECORD_TAG)));
    PCollection<BadRecord> badRecords =
        outputs.get(BadRecordRouter.BAD_RECORD_TAG).setCoder(BadRecord.getCoder(input.getPipeline()));
    if (getBadRecordPolicy() == BadRecordPolicy.ROUTE) {
      getBadRecordErrorHandler().addErrorCollection(badRecords);
    }
    return outputs.get(ROWS).setRowSchema(outputSchema);
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("format", getFormat().name()).withLabel("Payload format"));
    builder.add(DisplayData.item("newlineDelimited", getFormat().isNewlineDelimited()));
    builder.add(DisplayData.item("schema", getFormat().getSchema().getFieldNames().toString()));
    builder.addIfNotNull(DisplayData.item("metadataField", getMetadataField()));
    builder.addIfNotNull(DisplayData.item("timestampField", getTimestampField()));
    builder.add(DisplayData.item("badRecords", getBadRecordPolicy().name()));
  }

  @AutoValue.Builder
  abstract static class Builder {
    abstract Builder setFormat(NatsFormat format);

    abstract Builder setMetadataField(@Nullable String metadataField);

    abstract Builder setTimestampField(@Nullable String timestampField);

    abstract Builder setAllowedTimestampSkew(Duration allowedTimestampSkew);

    abstract Builder setBadRecordPolicy(BadRecordPolicy policy);

    abstract Builder setBadRecordErrorHandler(@Nullable ErrorHandler<BadRecord, ?> errorHandler);

    abstract ParsePayloads build();
  }
}
