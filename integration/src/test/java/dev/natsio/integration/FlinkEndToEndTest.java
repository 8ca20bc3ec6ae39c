package dev.natsio.integration;

import dev.natsio.beam.testing.NatsTestServer;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.sdk.Pipeline;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * The end-to-end scenarios on the FlinkRunner (local mini-cluster, parallelism 2): the backfill in
 * batch mode, live windowed counts in streaming mode with checkpoints (there the unbounded read is
 * a Flink source: see {@code JetStreamUnboundedSource}).
 */
public class FlinkEndToEndTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  @Test
  public void backfillOf200kMessagesInBatchModeReadsEachExactlyOnce() throws Exception {
    EndToEndScenarios.backfill(SERVER, FlinkPipelines.batch(2), 200_000);
  }

  @Test
  public void liveWindowedCountsAreWrittenBackIncludingTheLastWindowAfterTheStreamGoesQuiet() throws Exception {
    EndToEndScenarios.liveWindowedCounts(SERVER, () -> FlinkPipelines.streaming(2, 2_000));
  }

  @Test
  public void liveWindowsCloseWhileMessagesKeepArriving() throws Exception {
    EndToEndScenarios.windowsCloseWhileMessagesKeepArriving(SERVER, () -> FlinkPipelines.streaming(2, 2_000));
  }

  /**
   * Checkpoints every second, the runner's bundle time: Beam's Flink operators then pass watermarks
   * on only if bundles finish before checkpoints (see RunnerOptions), which this job asks for.
   * Without {@code --finishBundleBeforeCheckpointing=true} no window closed (measured once).
   */
  @Test
  public void liveWindowsCloseWithCheckpointsEverySecondWhenBundlesFinishBeforeCheckpoints() throws Exception {
    EndToEndScenarios.windowsCloseWhileMessagesKeepArriving(SERVER, () -> {
      Pipeline pipeline = FlinkPipelines.streaming(2, 1_000);
      pipeline.getOptions().as(FlinkPipelineOptions.class).setFinishBundleBeforeCheckpointing(true);
      return pipeline;
    }, EndToEndScenarios.Pace.STEADY);
  }

  @Test
  public void liveWindowsCloseWhileMessagesArriveSteadilyEveryFewMilliseconds() throws Exception {
    EndToEndScenarios.windowsCloseWhileMessagesKeepArriving(SERVER, () -> FlinkPipelines.streaming(2, 2_000), EndToEndScenarios.Pace.STEADY);
  }
}
