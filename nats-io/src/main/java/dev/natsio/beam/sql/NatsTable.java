package dev.natsio.beam.sql;

import dev.natsio.beam.FormatRows;
import dev.natsio.beam.NatsFormat;
import dev.natsio.beam.NatsIO;
import dev.natsio.beam.ParsePayloads;
import dev.natsio.beam.schematransforms.NatsReadSchemaTransformProvider;
import dev.natsio.beam.schematransforms.RowFormats;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.extensions.sql.impl.BeamTableStatistics;
import org.apache.beam.sdk.extensions.sql.meta.SchemaBaseBeamTable;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.Schema.EquivalenceNullablePolicy;
import org.apache.beam.sdk.schemas.Schema.FieldType;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.SimpleFunction;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollection.IsBounded;
import org.apache.beam.sdk.values.POutput;
import org.apache.beam.sdk.values.Row;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * A {@code TYPE nats} table: {@code SELECT} is {@code NatsIO.read()} then {@code
 * NatsIO.parsePayloads(format)}, {@code INSERT INTO} is {@code NatsIO.formatRows(format, subject)}
 * then {@code NatsIO.write()}.
 *
 * <p><b>Columns</b>
 *
 * <p>The payload format's schema is the table's columns minus the metadata columns, which are
 * recognised by name ({@link #METADATA_COLUMNS}) and filled from the message rather than the payload.
 * They are read-only: {@code INSERT INTO} leaves them out of the payload.
 *
 * <p><b>Bounded or not</b>
 *
 * <p>A table with {@code stopSequence} or {@code stopAtEndOfStream} is bounded; any other is
 * unbounded and carries the read's watermark (publish time, advancing on an idle stream), so a
 * windowed {@code GROUP BY TUMBLE(nats_timestamp, ...)} closes its windows as the stream goes on.
 */
final class NatsTable extends SchemaBaseBeamTable {
  private static final long serialVersionUID = 1L;

  /** The metadata columns a table may declare, with their types: those of {@link ParsePayloads#METADATA_SCHEMA}. */
  static final Map<String, String> METADATA_COLUMNS = Map.of(
      "nats_subject", "subject",
      "nats_stream", "stream",
      "nats_sequence", "sequence",
      "nats_timestamp", "timestamp",
      "nats_headers", "headers");

  /** The name parsePayloads gives the metadata row, chosen so no column can be called that. */
  private static final String METADATA_FIELD = "__nats_metadata";

  private final String name;
  private final String servers;
  private final NatsTableProperties properties;
  /** The columns the payload holds: all but the metadata columns. */
  private final Schema payloadSchema;

  NatsTable(String name, Schema schema, String servers, NatsTableProperties properties) {
    super(schema);
    this.name = name;
    this.servers = servers;
    this.properties = properties;
    Schema.Builder payload = Schema.builder();
    for (Schema.Field column : schema.getFields()) {
      String metadata = METADATA_COLUMNS.get(column.getName());
      if (metadata == null) {
        payload.addField(column);
        continue;
      }
      FieldType expected = ParsePayloads.METADATA_SCHEMA.getField(metadata).getType();
      if (!column.getType().equivalent(expected, EquivalenceNullablePolicy.IGNORE)) {
        throw new IllegalArgumentException(
            "NATS table '" + name + "': metadata column " + column.getName() + " must have type " + sqlType(metadata)
                + ", not " + column.getType() + ". Metadata columns: " + describeMetadataColumns() + ".");
      }
    }
    this.payloadSchema = payload.build();
    if (payloadSchema.getFieldCount() == 0) {
      throw new IllegalArgumentException(
          "NATS table '" + name + "' has only metadata columns; declare at least one column for the payload.");
    }
    format(); // Refuses a schema the format cannot hold when the table is created, not when it is queried.
  }

  private NatsFormat format() {
    return RowFormats.forSchema(properties.format(), payloadSchema);
  }

  @Override
  public IsBounded isBounded() {
    return properties.bounded() ? IsBounded.BOUNDED : IsBounded.UNBOUNDED;
  }

  @Override
  public BeamTableStatistics getTableStatistics(PipelineOptions options) {
    return properties.bounded() ? BeamTableStatistics.BOUNDED_UNKNOWN : BeamTableStatistics.UNBOUNDED_UNKNOWN;
  }

  @Override
  public PCollection<Row> buildIOReader(PBegin begin) {
    ParsePayloads parse = NatsIO.parsePayloads(format());
    if (properties.dropBadRecords()) {
      parse = parse.withDropBadRecords();
    }
    boolean metadata = schema.getFieldNames().stream().anyMatch(METADATA_COLUMNS::containsKey);
    if (metadata) {
      parse = parse.withMetadata(METADATA_FIELD);
    }
    PCollection<Row> parsed = begin
        .apply("Read " + name, NatsReadSchemaTransformProvider.readOf(properties.readConfiguration(servers)))
        .apply("Parse " + name, parse);
    return parsed.apply("Columns of " + name, MapElements.via(new ToColumns(schema))).setRowSchema(schema);
  }

  @Override
  public POutput buildIOWriter(PCollection<Row> input) {
    String subject = properties.string("subject");
    if (subject == null) {
      throw new IllegalArgumentException(
          "INSERT INTO NATS table '" + name + "' needs TBLPROPERTIES subject: the subject to publish rows to.");
    }
    FormatRows formatRows = NatsIO.formatRows(format(), subject);
    String idColumn = properties.string("messageIdColumn");
    if (idColumn != null) {
      if (!payloadSchema.hasField(idColumn)) {
        throw new IllegalArgumentException(
            "NATS table '" + name + "': messageIdColumn '" + idColumn + "' is not one of its payload columns "
                + payloadSchema.getFieldNames() + ".");
      }
      formatRows = formatRows.withMessageIdField(idColumn);
    }
    NatsIO.Write write = NatsIO.write().withServers(servers);
    if (properties.flag("jetStream")) {
      write = write.withJetStream();
    }
    return input
        .apply("Payload columns of " + name, MapElements.via(new ToPayload(schema, payloadSchema)))
        .setRowSchema(payloadSchema)
        .apply("Format " + name, formatRows)
        .apply("Write " + name, write);
  }

  private static String sqlType(String metadataField) {
    switch (metadataField) {
      case "sequence":
        return "BIGINT";
      case "timestamp":
        return "TIMESTAMP";
      case "headers":
        return "MAP<VARCHAR, ARRAY<VARCHAR>>";
      default:
        return "VARCHAR";
    }
  }

  private static String describeMetadataColumns() {
    List<String> columns = new ArrayList<>();
    for (String column : List.of("nats_subject", "nats_stream", "nats_sequence", "nats_timestamp", "nats_headers")) {
      columns.add(column + " " + sqlType(METADATA_COLUMNS.get(column)));
    }
    return String.join(", ", columns);
  }

  /** A parsed row (payload fields plus the metadata row) as a row of the table's columns. */
  private static final class ToColumns extends SimpleFunction<Row, Row> {
    private static final long serialVersionUID = 1L;
    private final Schema schema;

    ToColumns(Schema schema) {
      this.schema = schema;
    }

    @Override
    public Row apply(Row parsed) {
      List<Object> values = new ArrayList<>(schema.getFieldCount());
      for (Schema.Field column : schema.getFields()) {
        String metadata = METADATA_COLUMNS.get(column.getName());
        if (metadata == null) {
          values.add(parsed.getValue(column.getName()));
        } else {
          Row nats = parsed.getRow(METADATA_FIELD);
          values.add(nats == null ? null : nats.getValue(metadata));
        }
      }
      return Row.withSchema(schema).attachValues(values);
    }
  }

  /**
   * A row to insert, by position in the table's columns (a query's output names may differ), as a
   * row of the payload's columns.
   */
  private static final class ToPayload extends SimpleFunction<Row, Row> {
    private static final long serialVersionUID = 1L;
    private final Schema table;
    private final Schema payload;

    ToPayload(Schema table, Schema payload) {
      this.table = table;
      this.payload = payload;
    }

    @Override
    public Row apply(Row row) {
      List<@Nullable Object> values = new ArrayList<>(payload.getFieldCount());
      for (int i = 0; i < table.getFieldCount(); i++) {
        if (!METADATA_COLUMNS.containsKey(table.getField(i).getName())) {
          values.add(row.getValue(i));
        }
      }
      return Row.withSchema(payload).attachValues(values);
    }
  }
}
