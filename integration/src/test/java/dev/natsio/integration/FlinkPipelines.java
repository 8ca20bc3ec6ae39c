package dev.natsio.integration;

import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.runners.flink.FlinkRunner;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptionsFactory;

/** Pipelines on Beam's classic FlinkRunner in a local mini-cluster inside the test JVM (tests and benchmarks). */
public final class FlinkPipelines {
  private FlinkPipelines() {}

  /** A batch pipeline: bounded reads only, no checkpoints. */
  public static Pipeline batch(int parallelism) {
    FlinkPipelineOptions options = options(parallelism);
    options.setStreaming(false);
    return Pipeline.create(options);
  }

  /**
   * A streaming pipeline with checkpoints every {@code checkpointMillis}. Detached, so {@code
   * run()} returns at once and the test cancels the job when done (attached, it would block forever).
   */
  public static Pipeline streaming(int parallelism, long checkpointMillis) {
    FlinkPipelineOptions options = options(parallelism);
    options.setStreaming(true);
    options.setAttachedMode(false);
    options.setCheckpointingInterval(checkpointMillis);
    return Pipeline.create(options);
  }

  public static FlinkPipelineOptions options(int parallelism) {
    FlinkPipelineOptions options = PipelineOptionsFactory.create().as(FlinkPipelineOptions.class);
    options.setRunner(FlinkRunner.class);
    options.setFlinkMaster("[local]");
    options.setParallelism(parallelism);
    options.setMaxParallelism(Math.max(parallelism, 2));
    return options;
  }
}
