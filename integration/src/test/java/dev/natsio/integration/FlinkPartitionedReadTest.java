package dev.natsio.integration;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.testing.NatsTestServer;
import java.util.List;
import org.joda.time.Duration;
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
    String clicks = "parts_" + EndToEndScenarios.shortId();
    // An idle watermark an hour behind: only the publish times of the messages read can close windows.
    NatsIO.Read read = NatsIO.read().withServers(SERVER.url()).withStream(clicks)
        .withPartitions(clicks + ".{{partition}}.>", 4).withIdleWatermarkDelay(Duration.standardHours(1));
    EndToEndScenarios.windowsCloseWhileMessagesKeepArriving(SERVER, () -> FlinkPipelines.streaming(2, 2_000), clicks, read,
        (i, round) -> clicks + "." + (i % 4) + ".page" + ((i + round) % 3), List.of());
  }

  @Test
  public void oneHotPartitionClosesWindowsWhileTheThreeOthersAreQuiet() throws Exception {
    String clicks = "skew_" + EndToEndScenarios.shortId();
    // The quiet partitions hold one old message each: only their idle watermark (now less 1 s) lets windows close.
    NatsIO.Read read = NatsIO.read().withServers(SERVER.url()).withStream(clicks)
        .withPartitions(clicks + ".{{partition}}.>", 4).withIdleWatermarkDelay(Duration.standardSeconds(1));
    EndToEndScenarios.windowsCloseWhileMessagesKeepArriving(SERVER, () -> FlinkPipelines.streaming(2, 2_000), clicks, read,
        (i, round) -> clicks + ".0.page" + ((i + round) % 3), List.of(clicks + ".1.q", clicks + ".2.q", clicks + ".3.q"));
  }
}
