package dev.natsio.examples.flink;

import org.apache.beam.sdk.options.Default;
import org.apache.beam.sdk.options.Description;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.Validation;

/**
 * Where the Flink cluster jobs in this package read and write. Runner options (Flink master,
 * checkpointing, restart strategy) come on the same command line; see docs/deploying.md.
 */
public interface NatsJobOptions extends PipelineOptions {
  /** The NATS servers, comma-separated, as the TaskManagers reach them. */
  @Description("NATS server URLs, comma-separated, as the TaskManagers reach them")
  @Default.String("nats://127.0.0.1:4222")
  String getNatsUrl();

  /** Sets {@link #getNatsUrl()}. */
  void setNatsUrl(String natsUrl);

  /** The JetStream stream the job reads. */
  @Description("The JetStream stream to read")
  @Validation.Required
  String getInputStream();

  /** Sets {@link #getInputStream()}. */
  void setInputStream(String inputStream);

  /** The subject results are published to; a JetStream stream must capture it. */
  @Description("The subject results are published to; a JetStream stream must capture it")
  @Validation.Required
  String getOutputSubject();

  /** Sets {@link #getOutputSubject()}. */
  void setOutputSubject(String outputSubject);
}
