package dev.natsio.integration;

import dev.natsio.beam.testing.NatsTestServer;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * Partitioned live reads on the FlinkRunner (local mini-cluster, parallelism 2): 4 partitions read
 * as 4 splits of the Flink source, two per subtask. Windows after the read close while traffic
 * flows, also when one partition gets all of it and the other three are quiet. (Restores: see
 * {@link FlinkCheckpointRestoreTest}.)
 */
public class FlinkPartitionedReadTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  @Test
  public void windowsAfterAFourPartitionReadCloseWhileMessagesKeepArriving() throws Exception {
    EndToEndScenarios.partitionedWindowsCloseWhileMessagesKeepArriving(SERVER, () -> FlinkPipelines.streaming(2, 2_000));
  }

  @Test
  public void oneHotPartitionClosesWindowsWhileTheThreeOthersAreQuiet() throws Exception {
    EndToEndScenarios.hotPartitionClosesWindowsWhileTheOthersAreQuiet(SERVER, () -> FlinkPipelines.streaming(2, 2_000));
  }
}
