package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.JetStreamTestData;
import dev.natsio.beam.testing.NatsTestServer;
import dev.natsio.beam.testing.SequenceSummary;
import io.nats.client.Connection;
import java.util.List;
import java.util.UUID;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * Partitioned reads on the FlinkRunner (local mini-cluster, parallelism 2). Live: 4 partitions
 * read as 4 splits of the Flink source, two per subtask; windows after the read close while
 * traffic flows, also when one partition gets all of it and the other three are quiet. Bounded:
 * batch mode reads every partition's messages once. (Restores: see {@link
 * FlinkCheckpointRestoreTest}.)
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

  @Test
  public void boundedFourPartitionReadInBatchModeReadsEachMessageOnce() throws Exception {
    int count = 20_000;
    try (Connection connection = SERVER.connect()) {
      createStream(connection, "batchparts", "batchparts.>");
      publish(connection, i -> "batchparts." + (i % 4) + ".k", count, JetStreamTestData::payload, i -> null);
    }
    String id = "batchparts-" + UUID.randomUUID();
    Pipeline pipeline = FlinkPipelines.batch(2);
    pipeline
        .apply(NatsIO.read().withServers(SERVER.url()).withStream("batchparts")
            .withPartitions("batchparts.{{partition}}.>", 4).withStopAtEndOfStream().withSplitSize(2_000))
        .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
        .apply(SequenceSummary.globally())
        .apply(CollectingSink.into(id));

    assertThat(pipeline.run().waitUntilFinish(), equalTo(PipelineResult.State.DONE));
    assertThat(CollectingSink.collected(id), equalTo(List.of(SequenceSummary.exactlyOnce(1, count))));
  }
}
