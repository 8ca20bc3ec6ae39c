package dev.natsio.integration;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsInAnyOrder;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsKeyValue;
import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.KeyValue;
import io.nats.client.api.KeyValueConfiguration;
import io.nats.client.api.StorageType;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.ClassRule;
import org.junit.Test;

/** NatsIO.readKeyValue() in a running Flink streaming job (restore from a checkpoint: FlinkCheckpointRestoreTest). */
public class FlinkKeyValueTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  @Test
  public void liveChangesToABucketArriveInARunningFlinkJob() throws Exception {
    List<String> expected = new ArrayList<>();
    try (Connection connection = SERVER.connect()) {
      connection.keyValueManagement().create(
          KeyValueConfiguration.builder().name("live").maxHistoryPerKey(1).storageType(StorageType.Memory).build());
      KeyValue kv = connection.keyValue("live");
      for (int i = 0; i < 100; i++) {
        expected.add("k." + i + "@" + kv.put("k." + i, utf8("v" + i)) + " PUT v" + i);
      }

      String id = "flink-kv-live-" + UUID.randomUUID();
      Pipeline pipeline = FlinkPipelines.streaming(2, 1_000);
      pipeline
          .apply(NatsIO.readKeyValue().withServers(SERVER.url()).withBucket("live"))
          .apply(MapElements.into(TypeDescriptors.strings()).via(FlinkKeyValueTest::describe))
          .apply(CollectingSink.into(id));
      PipelineResult result = pipeline.run();
      try {
        CollectingSink.<String>await(id, seen -> seen.size() >= 100, 120_000);
        // Changes made while the job runs: 50 updates and 10 deletes, each its own revision.
        for (int i = 0; i < 50; i++) {
          expected.add("k." + i + "@" + kv.put("k." + i, utf8("w" + i)) + " PUT w" + i);
        }
        for (int i = 90; i < 100; i++) {
          kv.delete("k." + i);
          expected.add("k." + i + "@" + kv.history("k." + i).get(0).getRevision() + " DELETE ");
        }
        List<String> seen = CollectingSink.await(id, s -> s.size() >= expected.size(), 60_000);
        assertThat(seen, containsInAnyOrder(expected.toArray()));
      } finally {
        result.cancel();
      }
    }
  }

  @Test
  public void boundedSnapshotInFlinkBatchModeHoldsEachKeysLatestRevision() throws Exception {
    List<String> expected = new ArrayList<>();
    try (Connection connection = SERVER.connect()) {
      connection.keyValueManagement().create(
          KeyValueConfiguration.builder().name("batch").maxHistoryPerKey(3).storageType(StorageType.Memory).build());
      KeyValue kv = connection.keyValue("batch");
      for (int i = 0; i < 2_000; i++) {
        kv.put("k." + i, utf8("v" + i));
      }
      for (int i = 0; i < 2_000; i++) {
        if (i % 10 == 0) {
          kv.delete("k." + i);
          expected.add("k." + i + "@" + kv.history("k." + i).get(1).getRevision() + " DELETE ");
        } else if (i % 2 == 0) {
          expected.add("k." + i + "@" + kv.put("k." + i, utf8("w" + i)) + " PUT w" + i);
        } else {
          expected.add("k." + i + "@" + kv.get("k." + i).getRevision() + " PUT v" + i);
        }
      }
    }
    String id = "flink-kv-batch-" + UUID.randomUUID();
    Pipeline pipeline = FlinkPipelines.batch(2);
    pipeline
        .apply(NatsIO.readKeyValue().withServers(SERVER.url()).withBucket("batch").withStopAtCurrentRevision())
        .apply(MapElements.into(TypeDescriptors.strings()).via(FlinkKeyValueTest::describe))
        .apply(CollectingSink.into(id));
    pipeline.run().waitUntilFinish();
    assertThat(CollectingSink.collected(id), containsInAnyOrder(expected.toArray()));
  }

  private static String describe(NatsKeyValue entry) {
    return entry.getKey() + "@" + entry.getRevision() + " " + entry.getOperation() + " " + entry.getValueAsString();
  }

  private static byte[] utf8(String value) {
    return value.getBytes(StandardCharsets.UTF_8);
  }
}
