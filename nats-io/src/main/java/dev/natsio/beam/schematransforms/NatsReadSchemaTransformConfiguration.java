package dev.natsio.beam.schematransforms;

import com.google.auto.value.AutoValue;
import java.util.List;
import org.apache.beam.sdk.schemas.AutoValueSchema;
import org.apache.beam.sdk.schemas.annotations.DefaultSchema;
import org.apache.beam.sdk.schemas.annotations.SchemaFieldDescription;
import org.apache.beam.sdk.schemas.transforms.providers.ErrorHandling;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * Configuration of {@link NatsReadSchemaTransformProvider}: the settings of {@code NatsIO.read()}
 * and {@code NatsIO.parsePayloads(...)}. Beam's typed provider shows the getters' names in snake_case
 * ({@code getFilterSubjects} is {@code filter_subjects}), as Beam YAML and Python expect.
 */
@DefaultSchema(AutoValueSchema.class)
@AutoValue
public abstract class NatsReadSchemaTransformConfiguration {

  /** The NATS servers, comma-separated URLs such as {@code nats://localhost:4222}. */
  @SchemaFieldDescription("The NATS servers: comma-separated URLs such as nats://localhost:4222.")
  public abstract String getServers();

  /** The JetStream stream to read, or null for a Core subject read. */
  @SchemaFieldDescription("The JetStream stream to read. Leave out to read a Core NATS subject (see subject).")
  public abstract @Nullable String getStream();

  /** Subjects of the stream to read, each its own partition; null for all. */
  @SchemaFieldDescription("Subjects of the stream to read (wildcards allowed); each is a partition read in parallel. Default: all.")
  public abstract @Nullable List<String> getFilterSubjects();

  /** The Core NATS subject to subscribe to (at-most-once), instead of a stream. */
  @SchemaFieldDescription("A Core NATS subject to subscribe to instead of a stream: at-most-once, processing-time timestamps.")
  public abstract @Nullable String getSubject();

  /** The queue group of a Core subject read. */
  @SchemaFieldDescription("The queue group of a Core subject read, to share its messages with other members.")
  public abstract @Nullable String getQueueGroup();

  /** A durable consumer of the stream to read through (at-least-once, acknowledged after commit). */
  @SchemaFieldDescription("A durable consumer of the stream to read through: at-least-once, acknowledged after the runner commits.")
  public abstract @Nullable String getConsumer();

  /** The first stream sequence to read. */
  @SchemaFieldDescription("The first stream sequence to read. Default: the stream's first message.")
  public abstract @Nullable Long getStartSequence();

  /** The publish time to start at, ISO-8601. */
  @SchemaFieldDescription("Start at the first message published at or after this time (ISO-8601, e.g. 2024-05-01T12:00:00Z).")
  public abstract @Nullable String getStartTime();

  /** The stream sequence to stop before (exclusive): a bounded read. */
  @SchemaFieldDescription("Stop before this stream sequence (exclusive): the read is bounded.")
  public abstract @Nullable Long getStopSequence();

  /** Stop at the stream's last message as of the start: a bounded read. */
  @SchemaFieldDescription("Stop at the stream's last message when the read starts: the read is bounded. Default: false, a live unbounded read.")
  public abstract @Nullable Boolean getStopAtEndOfStream();

  /** The payload format; json by default. */
  @SchemaFieldDescription("The payload format: json (default), avro, arrow, string or bytes.")
  public abstract @Nullable String getFormat();

  /** The rows' schema: a JSON schema, or an Avro schema in JSON for avro. */
  @SchemaFieldDescription("The rows' schema: a JSON schema for json and arrow, an Avro record schema in JSON for avro; none for string and bytes (one field 'payload').")
  public abstract @Nullable String getSchema();

  /** Where bad records go; without it a bad record fails the pipeline. */
  @SchemaFieldDescription("Where payloads that do not parse go: {output: NAME} makes an output NAME of error rows (failed_row, error_message). Without it a bad payload fails the pipeline.")
  public abstract @Nullable ErrorHandling getErrorHandling();

  /** A builder, for Java users of the provider. */
  public static Builder builder() {
    return new AutoValue_NatsReadSchemaTransformConfiguration.Builder();
  }

  /** Builds a {@link NatsReadSchemaTransformConfiguration}. */
  @AutoValue.Builder
  public abstract static class Builder {
    /** See {@link #getServers()}. */
    public abstract Builder setServers(String servers);

    /** See {@link #getStream()}. */
    public abstract Builder setStream(@Nullable String stream);

    /** See {@link #getFilterSubjects()}. */
    public abstract Builder setFilterSubjects(@Nullable List<String> filterSubjects);

    /** See {@link #getSubject()}. */
    public abstract Builder setSubject(@Nullable String subject);

    /** See {@link #getQueueGroup()}. */
    public abstract Builder setQueueGroup(@Nullable String queueGroup);

    /** See {@link #getConsumer()}. */
    public abstract Builder setConsumer(@Nullable String consumer);

    /** See {@link #getStartSequence()}. */
    public abstract Builder setStartSequence(@Nullable Long startSequence);

    /** See {@link #getStartTime()}. */
    public abstract Builder setStartTime(@Nullable String startTime);

    /** See {@link #getStopSequence()}. */
    public abstract Builder setStopSequence(@Nullable Long stopSequence);

    /** See {@link #getStopAtEndOfStream()}. */
    public abstract Builder setStopAtEndOfStream(@Nullable Boolean stopAtEndOfStream);

    /** See {@link #getFormat()}. */
    public abstract Builder setFormat(@Nullable String format);

    /** See {@link #getSchema()}. */
    public abstract Builder setSchema(@Nullable String schema);

    /** See {@link #getErrorHandling()}. */
    public abstract Builder setErrorHandling(@Nullable ErrorHandling errorHandling);

    /** The configuration. */
    public abstract NatsReadSchemaTransformConfiguration build();
  }
}
