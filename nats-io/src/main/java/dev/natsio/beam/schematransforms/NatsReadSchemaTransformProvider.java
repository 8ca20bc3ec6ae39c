package dev.natsio.beam.schematransforms;

import com.google.auto.service.AutoService;
import dev.natsio.beam.NatsFormat;
import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.ParsePayloads;
import java.util.List;
import org.apache.beam.sdk.schemas.transforms.SchemaTransform;
import org.apache.beam.sdk.schemas.transforms.SchemaTransformProvider;
import org.apache.beam.sdk.schemas.transforms.TypedSchemaTransformProvider;
import org.apache.beam.sdk.schemas.transforms.providers.ErrorHandling;
import org.apache.beam.sdk.transforms.errorhandling.ErrorHandler.BadRecordErrorHandler;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionRowTuple;
import org.apache.beam.sdk.values.Row;
import org.joda.time.Instant;

/**
 * The NATS read as a schema transform, {@value #IDENTIFIER}, for Beam YAML, the Python SDK (through
 * an expansion service) and Managed-style Java use: {@code NatsIO.read()} followed by {@code
 * NatsIO.parsePayloads(format)}, configured by {@link NatsReadSchemaTransformConfiguration}.
 *
 * <p>Outputs, as Beam's YAML-facing providers name them: {@code output}, the rows; and, when {@code
 * error_handling: {output: errors}} is set, {@code errors}: one row per payload that does not parse,
 * with the payload ({@code failed_row}) and NatsIO's description of the problem ({@code
 * error_message}). Without {@code error_handling} a bad payload fails the pipeline.
 */
@AutoService(SchemaTransformProvider.class)
public class NatsReadSchemaTransformProvider extends TypedSchemaTransformProvider<NatsReadSchemaTransformConfiguration> {
  /** The URN Beam YAML and Python name this transform by. */
  public static final String IDENTIFIER = "beam:schematransform:dev.natsio:nats_read:v1";

  @Override
  public String identifier() {
    return IDENTIFIER;
  }

  @Override
  public String description() {
    return "Reads a NATS JetStream stream (position-tracked, or through a durable consumer) or a Core NATS subject,"
        + " and parses each payload into a row (json, avro, arrow, string or bytes). Bounded with stop_sequence or"
        + " stop_at_end_of_stream, otherwise a live unbounded read whose watermark follows publish time.";
  }

  @Override
  public List<String> inputCollectionNames() {
    return List.of();
  }

  @Override
  public List<String> outputCollectionNames() {
    return List.of("output", "errors");
  }

  @Override
  protected SchemaTransform from(NatsReadSchemaTransformConfiguration configuration) {
    return new NatsReadSchemaTransform(configuration);
  }

  /**
   * The {@code NatsIO.read()} a configuration describes, without parsing. The SQL table provider
   * builds its reads here too, so both validate the same way ({@code NatsIO.Read}'s own checks).
   */
  public static NatsIO.Read readOf(NatsReadSchemaTransformConfiguration configuration) {
    NatsIO.Read read = NatsIO.read().withServers(configuration.getServers());
    if (configuration.getStream() != null) {
      read = read.withStream(configuration.getStream());
    }
    if (configuration.getFilterSubjects() != null && !configuration.getFilterSubjects().isEmpty()) {
      read = read.withFilterSubjects(configuration.getFilterSubjects().toArray(new String[0]));
    }
    if (configuration.getSubject() != null) {
      read = read.withSubject(configuration.getSubject());
    }
    if (configuration.getQueueGroup() != null) {
      read = read.withQueueGroup(configuration.getQueueGroup());
    }
    if (configuration.getConsumer() != null) {
      read = read.withConsumer(configuration.getConsumer());
    }
    if (configuration.getStartSequence() != null) {
      read = read.withStartSequence(configuration.getStartSequence());
    }
    if (configuration.getStartTime() != null) {
      read = read.withStartTime(startTimeOf(configuration.getStartTime()));
    }
    if (configuration.getStopSequence() != null) {
      read = read.withStopSequence(configuration.getStopSequence());
    }
    if (Boolean.TRUE.equals(configuration.getStopAtEndOfStream())) {
      read = read.withStopAtEndOfStream();
    }
    return read;
  }

  private static Instant startTimeOf(String text) {
    try {
      return Instant.parse(text);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(
          "start_time '" + text + "' is not an ISO-8601 time; write it like 2024-05-01T12:00:00Z.", e);
    }
  }

  /** The read and parse steps, with bad records failing the pipeline or going to an errors output. */
  static final class NatsReadSchemaTransform extends SchemaTransform {
    private static final long serialVersionUID = 1L;
    private final NatsReadSchemaTransformConfiguration configuration;

    NatsReadSchemaTransform(NatsReadSchemaTransformConfiguration configuration) {
      this.configuration = configuration;
    }

    @Override
    public PCollectionRowTuple expand(PCollectionRowTuple input) {
      NatsFormat format = RowFormats.forSchemaText(
          configuration.getFormat() == null ? "json" : configuration.getFormat(), configuration.getSchema());
      PCollection<NatsMessage> messages = input.getPipeline().apply("Read from NATS", readOf(configuration));
      ParsePayloads parse = NatsIO.parsePayloads(format);
      String errorOutput = ErrorHandling.getOutputOrNull(configuration.getErrorHandling());
      if (errorOutput == null) {
        return PCollectionRowTuple.of("output", messages.apply("Parse payloads", parse));
      }
      PCollection<Row> rows;
      BadRecordErrorHandler<PCollection<Row>> errors = input.getPipeline().registerBadRecordErrorHandler(new ErrorRows());
      try {
        rows = messages.apply("Parse payloads", parse.withBadRecordErrorHandler(errors));
      } finally {
        errors.close();
      }
      return PCollectionRowTuple.of("output", rows, errorOutput, errors.getOutput());
    }
  }
}
