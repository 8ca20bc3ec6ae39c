package dev.natsio.integration;

import dev.natsio.beam.testing.NatsTestServer;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * The end-to-end scenarios on the FlinkRunner (local mini-cluster, parallelism 2).
 *
 * <p>The live windowed-aggregation scenario is not here: on the classic FlinkRunner 2.70 in
 * streaming mode, event-time windows downstream of an unbounded splittable DoFn never fire — Beam's
 * own {@code PeriodicImpulse} shows the same — so the output watermark of the SDF operator does not
 * advance there (see docs/runners.md). It runs on the Direct runner.
 */
public class FlinkEndToEndTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  @Test
  public void backfillOf200kMessagesInBatchModeReadsEachExactlyOnce() throws Exception {
    EndToEndScenarios.backfill(SERVER, FlinkPipelines.batch(2), 200_000);
  }
}
