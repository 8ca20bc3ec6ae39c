package dev.natsio.examples;

import org.apache.beam.sdk.options.Default;
import org.apache.beam.sdk.options.Description;
import org.apache.beam.sdk.options.PipelineOptions;

/** The options every example takes besides Beam's own ({@code --runner} and the runner's). */
public interface ExampleOptions extends PipelineOptions {
  /** The NATS server(s), comma-separated. */
  @Description("NATS server URL(s), comma-separated")
  @Default.String("nats://127.0.0.1:4222")
  String getNatsUrl();

  /** Sets the NATS server URL(s). */
  void setNatsUrl(String natsUrl);
}
