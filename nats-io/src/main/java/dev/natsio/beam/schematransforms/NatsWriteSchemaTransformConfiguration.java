package dev.natsio.beam.schematransforms;

import com.google.auto.value.AutoValue;
import org.apache.beam.sdk.schemas.AutoValueSchema;
import org.apache.beam.sdk.schemas.annotations.DefaultSchema;
import org.apache.beam.sdk.schemas.annotations.SchemaFieldDescription;
import org.apache.beam.sdk.schemas.transforms.providers.ErrorHandling;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * Configuration of {@link NatsWriteSchemaTransformProvider}: the settings of {@code
 * NatsIO.formatRows(...)} and {@code NatsIO.write()}, with snake_case names for Beam YAML and Python.
 */
@DefaultSchema(AutoValueSchema.class)
@AutoValue
public abstract class NatsWriteSchemaTransformConfiguration {

  /** The NATS servers, comma-separated URLs. */
  @SchemaFieldDescription("The NATS servers: comma-separated URLs such as nats://localhost:4222.")
  public abstract String getServers();

  /** The subject every row is published to. */
  @SchemaFieldDescription("The subject every row is published to.")
  public abstract String getSubject();

  /** Publish to JetStream and await each acknowledgement; Core NATS by default. */
  @SchemaFieldDescription("Publish to JetStream and wait until the stream has stored each row. Default: false, Core NATS (no confirmation).")
  public abstract @Nullable Boolean getJetStream();

  /** The field whose value is each message's Nats-Msg-Id. */
  @SchemaFieldDescription("A field whose value becomes each message's Nats-Msg-Id, so JetStream stores a row once even if it is written again within the stream's duplicate window.")
  public abstract @Nullable String getMessageIdField();

  /** The payload format; json by default. */
  @SchemaFieldDescription("The payload format: json (default), avro, arrow, string or bytes (string and bytes: rows of one STRING or BYTES field).")
  public abstract @Nullable String getFormat();

  /** Where rows NATS refuses go; without it they fail the pipeline. */
  @SchemaFieldDescription("Where rows NATS refuses go (too large, no stream for the subject): {output: NAME} makes an output NAME of error rows. Without it they fail the pipeline.")
  public abstract @Nullable ErrorHandling getErrorHandling();

  /** A builder, for Java users of the provider. */
  public static Builder builder() {
    return new AutoValue_NatsWriteSchemaTransformConfiguration.Builder();
  }

  /** Builds a {@link NatsWriteSchemaTransformConfiguration}. */
  @AutoValue.Builder
  public abstract static class Builder {
    /** See {@link #getServers()}. */
    public abstract Builder setServers(String servers);

    /** See {@link #getSubject()}. */
    public abstract Builder setSubject(String subject);

    /** See {@link #getJetStream()}. */
    public abstract Builder setJetStream(@Nullable Boolean jetStream);

    /** See {@link #getMessageIdField()}. */
    public abstract Builder setMessageIdField(@Nullable String messageIdField);

    /** See {@link #getFormat()}. */
    public abstract Builder setFormat(@Nullable String format);

    /** See {@link #getErrorHandling()}. */
    public abstract Builder setErrorHandling(@Nullable ErrorHandling errorHandling);

    /** The configuration. */
    public abstract NatsWriteSchemaTransformConfiguration build();
  }
}
