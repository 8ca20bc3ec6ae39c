package dev.natsio.integration;

import dev.natsio.beam.testing.NatsTestServer;
import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.junit.ClassRule;
import org.junit.Test;

/** The end-to-end scenarios on the Direct runner. */
public class DirectEndToEndTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  private static Pipeline pipeline(boolean blockOnRun) {
    DirectOptions options = PipelineOptionsFactory.create().as(DirectOptions.class);
    options.setBlockOnRun(blockOnRun);
    return Pipeline.create(options);
  }

  /**
   * A live pipeline for a read of 4 partitions: on the Direct runner each partition's read holds
   * a worker thread while it polls (250 ms a call, also when quiet), so with the default 3 threads
   * three quiet partitions would starve the busy one and everything after the read.
   */
  private static Pipeline partitionedPipeline() {
    DirectOptions options = PipelineOptionsFactory.create().as(DirectOptions.class);
    options.setBlockOnRun(false);
    options.setTargetParallelism(8);
    return Pipeline.create(options);
  }

  /**
   * 200k messages take minutes on the Direct runner (it checkpoints every 100 outputs), so CI
   * reads 50k; {@code -Dnatsio.e2e.full=true} runs the full size.
   */
  @Test
  public void backfillReadsEachMessageExactlyOnce() throws Exception {
    EndToEndScenarios.backfill(SERVER, pipeline(true), Boolean.getBoolean("natsio.e2e.full") ? 200_000 : 50_000);
  }

  @Test
  public void copyWithMessageIdsWritesEachMessageOnceAcrossAStopAndARerun() throws Exception {
    EndToEndScenarios.effectivelyOnceAcrossARerun(SERVER, () -> pipeline(false));
  }

  @Test
  public void liveWindowedCountsAreWrittenBackIncludingTheLastWindowAfterTheStreamGoesQuiet() throws Exception {
    EndToEndScenarios.liveWindowedCounts(SERVER, () -> pipeline(false));
  }

  @Test
  public void liveWindowsCloseWhileMessagesKeepArriving() throws Exception {
    EndToEndScenarios.windowsCloseWhileMessagesKeepArriving(SERVER, () -> pipeline(false));
  }

  @Test
  public void windowsAfterAFourPartitionReadCloseWhileMessagesKeepArriving() throws Exception {
    EndToEndScenarios.partitionedWindowsCloseWhileMessagesKeepArriving(SERVER, DirectEndToEndTest::partitionedPipeline);
  }

  @Test
  public void oneHotPartitionClosesWindowsWhileTheThreeOthersAreQuiet() throws Exception {
    EndToEndScenarios.hotPartitionClosesWindowsWhileTheOthersAreQuiet(SERVER, DirectEndToEndTest::partitionedPipeline);
  }
}
