package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.NatsTestCluster;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.Test;

/** An unbounded read on Flink streaming survives a server crash and a cluster leader failover. */
public class FlinkFaultToleranceTest {

  private static PipelineResult readSequencesInto(String servers, String stream, String id) {
    Pipeline pipeline = FlinkPipelines.streaming(2, 1_000);
    pipeline
        .apply(NatsIO.read().withServers(servers).withStream(stream))
        .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
        .apply(CollectingSink.into(id));
    return pipeline.run();
  }

  /** Publishes one more message to the stream read. */
  private interface Marker {
    void publish() throws Exception;
  }

  /**
   * Waits for sequences 1..last, then publishes a marker (sequence last + 1) and waits for it: the
   * read delivers in sequence order, so a duplicate of an earlier message would be output before it.
   */
  private static void assertEachExactlyOnce(String id, long last, Marker marker) throws Exception {
    CollectingSink.<Long>await(id, seen -> seen.size() >= last, 120_000);
    marker.publish();
    CollectingSink.<Long>await(id, seen -> seen.contains(last + 1), 120_000);
    List<Long> seen = CollectingSink.collected(id);
    Set<Long> distinct = new TreeSet<>(seen);
    assertThat("duplicates among " + seen.size() + " messages", seen.size(), equalTo(distinct.size()));
    assertThat(distinct, equalTo(LongStream.rangeClosed(1, last + 1).boxed().collect(Collectors.toCollection(TreeSet::new))));
  }

  @Test
  public void serverKilledAndRestartedMidStreamLosesNothing() throws Exception {
    String id = "flink-crash-" + UUID.randomUUID();
    try (NatsTestServer server = NatsTestServer.jetStream().start()) {
      try (Connection connection = server.connect()) {
        createStream(connection, "crash", "crash.>");
        publish(connection, "crash.x", 2_000);
      }
      PipelineResult result = readSequencesInto(server.url(), "crash", id);
      try {
        CollectingSink.<Long>await(id, seen -> seen.size() >= 2_000, 120_000);
        server.kill();
        Thread.sleep(2_000);
        server.restart();
        try (Connection connection = server.connect()) {
          publish(connection, "crash.x", 2_000);
        }
        assertEachExactlyOnce(id, 4_000, () -> {
          try (Connection connection = server.connect()) {
            publish(connection, "crash.x", 1);
          }
        });
      } finally {
        result.cancel();
      }
    }
  }

  @Test
  public void readGoesOnWhenTheStreamLeaderOfAnR3StreamIsKilled() throws Exception {
    String id = "flink-failover-" + UUID.randomUUID();
    try (NatsTestCluster cluster = NatsTestCluster.ofThree().start()) {
      try (Connection connection = cluster.connect()) {
        createStream(connection,
            StreamConfiguration.builder().name("replicated").subjects("rep.>").replicas(3).storageType(StorageType.File).build());
        publish(connection, "rep.x", 2_000);
      }
      PipelineResult result = readSequencesInto(cluster.urls(), "replicated", id);
      try {
        CollectingSink.<Long>await(id, seen -> seen.size() >= 2_000, 120_000);
        cluster.kill(cluster.streamLeader("replicated"));
        try (Connection connection = cluster.connect()) {
          publishWithRetry(connection.jetStream(), "rep.x", 2_000);
        }
        assertEachExactlyOnce(id, 4_000, () -> {
          try (Connection connection = cluster.connect()) {
            publishWithRetry(connection.jetStream(), "rep.x", 1);
          }
        });
      } finally {
        result.cancel();
      }
    }
  }

  /** Publishes one by one, retrying each while the cluster elects a new stream leader. */
  private static void publishWithRetry(JetStream js, String subject, int count) throws Exception {
    long deadline = System.currentTimeMillis() + 60_000;
    for (int i = 0; i < count; i++) {
      while (true) {
        try {
          js.publish(subject, ("r" + i).getBytes());
          break;
        } catch (Exception e) {
          if (System.currentTimeMillis() > deadline) {
            throw e;
          }
          Thread.sleep(200);
        }
      }
    }
  }
}
