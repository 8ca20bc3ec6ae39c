package dev.natsio.beam.schematransforms;

import com.google.auto.service.AutoService;
import dev.natsio.beam.FormatRows;
import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import java.util.List;
import org.apache.beam.sdk.schemas.transforms.SchemaTransform;
import org.apache.beam.sdk.schemas.transforms.SchemaTransformProvider;
import org.apache.beam.sdk.schemas.transforms.TypedSchemaTransformProvider;
import org.apache.beam.sdk.schemas.transforms.providers.ErrorHandling;
import org.apache.beam.sdk.transforms.errorhandling.ErrorHandler.BadRecordErrorHandler;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionRowTuple;
import org.apache.beam.sdk.values.Row;

/**
 * The NATS write as a schema transform, {@value #IDENTIFIER}: {@code NatsIO.formatRows(format,
 * subject)} followed by {@code NatsIO.write()}, configured by {@link
 * NatsWriteSchemaTransformConfiguration}. Its input is {@code input}, rows of any schema the format
 * can hold. With {@code error_handling: {output: errors}} rows NATS refuses come out as error rows
 * ({@code failed_row}: the payload, {@code error_message}); otherwise there is no output and a
 * refusal fails the pipeline.
 */
@AutoService(SchemaTransformProvider.class)
public class NatsWriteSchemaTransformProvider extends TypedSchemaTransformProvider<NatsWriteSchemaTransformConfiguration> {
  /** The URN Beam YAML and Python name this transform by. */
  public static final String IDENTIFIER = "beam:schematransform:dev.natsio:nats_write:v1";

  @Override
  public String identifier() {
    return IDENTIFIER;
  }

  @Override
  public String description() {
    return "Writes rows to a NATS subject as json, avro, arrow, string or bytes payloads, on Core NATS or to JetStream"
        + " (every publish acknowledged; message_id_field gives each row a Nats-Msg-Id for deduplication).";
  }

  @Override
  public List<String> inputCollectionNames() {
    return List.of("input");
  }

  @Override
  public List<String> outputCollectionNames() {
    return List.of("errors");
  }

  @Override
  protected SchemaTransform from(NatsWriteSchemaTransformConfiguration configuration) {
    return new NatsWriteSchemaTransform(configuration);
  }

  /** The format and write steps. */
  static final class NatsWriteSchemaTransform extends SchemaTransform {
    private static final long serialVersionUID = 1L;
    private final NatsWriteSchemaTransformConfiguration configuration;

    NatsWriteSchemaTransform(NatsWriteSchemaTransformConfiguration configuration) {
      this.configuration = configuration;
    }

    @Override
    public PCollectionRowTuple expand(PCollectionRowTuple input) {
      if (!input.has("input")) {
        throw new IllegalArgumentException("The NATS write takes one input named 'input'; it got " + input.getAll().keySet() + ".");
      }
      PCollection<Row> rows = input.get("input");
      FormatRows format = NatsIO.formatRows(
          RowFormats.forSchema(configuration.getFormat() == null ? "json" : configuration.getFormat(), rows.getSchema()),
          configuration.getSubject());
      if (configuration.getMessageIdField() != null) {
        format = format.withMessageIdField(configuration.getMessageIdField());
      }
      NatsIO.Write write = NatsIO.write().withServers(configuration.getServers());
      if (Boolean.TRUE.equals(configuration.getJetStream())) {
        write = write.withJetStream();
      }
      PCollection<NatsMessage> messages = rows.apply("Format rows", format);
      String errorOutput = ErrorHandling.getOutputOrNull(configuration.getErrorHandling());
      if (errorOutput == null) {
        messages.apply("Write to NATS", write);
        return PCollectionRowTuple.empty(input.getPipeline());
      }
      BadRecordErrorHandler<PCollection<Row>> errors = input.getPipeline().registerBadRecordErrorHandler(new ErrorRows());
      try {
        messages.apply("Write to NATS", write.withBadRecordErrorHandler(errors));
      } finally {
        errors.close();
      }
      return PCollectionRowTuple.of(errorOutput, errors.getOutput());
    }
  }
}
