package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import java.util.List;
import java.util.UUID;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.ClassRule;
import org.junit.Test;

/** NatsIO.read() on the real FlinkRunner in streaming mode (batch-mode backfill: FlinkEndToEndTest). */
public class FlinkReadTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  @Test
  public void unboundedReadInStreamingModeFollowsNewMessages() throws Exception {
    try (Connection connection = SERVER.connect()) {
      createStream(connection, "stream", "stream.>");
      publish(connection, "stream.x", 1_000);
    }
    String id = "flink-stream-" + UUID.randomUUID();
    Pipeline pipeline = FlinkPipelines.streaming(2, 1_000);
    pipeline
        .apply(NatsIO.read().withServers(SERVER.url()).withStream("stream"))
        .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
        .apply(CollectingSink.into(id));
    PipelineResult result = pipeline.run();
    try {
      CollectingSink.<Long>await(id, seen -> seen.size() >= 1_000, 120_000);
      try (Connection connection = SERVER.connect()) {
        publish(connection, "stream.x", 1_000);
      }
      List<Long> seen = CollectingSink.await(id, s -> s.size() >= 2_000, 60_000);
      Thread.sleep(1_000);
      seen = CollectingSink.collected(id);
      assertThat(new java.util.TreeSet<>(seen).size(), equalTo(seen.size()));
      assertThat(seen.size(), equalTo(2_000));
    } finally {
      result.cancel();
    }
  }
}
