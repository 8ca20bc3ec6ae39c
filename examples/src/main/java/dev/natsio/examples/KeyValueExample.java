package dev.natsio.examples;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsKeyValue;
import io.nats.client.Connection;
import io.nats.client.JetStreamApiException;
import io.nats.client.KeyValueManagement;
import io.nats.client.Nats;
import io.nats.client.api.KeyValueConfiguration;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.coders.ByteArrayCoder;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.NullableCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.TypeDescriptors;

/**
 * Writes a few settings to a Key/Value bucket with {@code NatsIO.writeKeyValue()} (one of them a
 * delete), then reads the bucket back as a bounded snapshot with {@code NatsIO.readKeyValue()}.
 *
 * <p>Needs a nats-server with JetStream at {@code NATS_URL} (default {@code nats://127.0.0.1:4222});
 * creates the bucket {@code example_config} if it is missing. See {@code docs/key-value.md}.
 */
public final class KeyValueExample {
  private static final String BUCKET = "example_config";

  private KeyValueExample() {}

  public static void main(String[] args) throws Exception {
    String url = System.getenv().getOrDefault("NATS_URL", "nats://127.0.0.1:4222");
    createBucketIfMissing(url);

    Pipeline write = Pipeline.create(PipelineOptionsFactory.fromArgs(args).create());
    write
        .apply("Settings", Create.of(Arrays.asList(
                KV.of("app.color", utf8("blue")),
                KV.of("app.size", utf8("42")),
                KV.of("app.legacy", (byte[]) null)))                 // null: delete the key
            .withCoder(KvCoder.of(StringUtf8Coder.of(), NullableCoder.of(ByteArrayCoder.of()))))
        .apply("Put", NatsIO.writeKeyValue().withServers(url).withBucket(BUCKET))
        .apply("Print revisions", MapElements.into(TypeDescriptors.strings()).via(kv -> {
          System.out.printf("stored %s at revision %d%n", kv.getKey(), kv.getValue());
          return kv.getKey();
        }));
    write.run().waitUntilFinish();

    Pipeline read = Pipeline.create(PipelineOptionsFactory.fromArgs(args).create());
    read
        .apply("Snapshot", NatsIO.readKeyValue().withServers(url).withBucket(BUCKET).withKeys("app.>").withStopAtCurrentRevision())
        .apply("Print entries", MapElements.into(TypeDescriptors.strings()).via((NatsKeyValue entry) -> {
          System.out.printf("%s = %s (revision %d, %s)%n",
              entry.getKey(), entry.getValueAsString(), entry.getRevision(), entry.getOperation());
          return entry.getKey();
        }));
    read.run().waitUntilFinish();
  }

  private static void createBucketIfMissing(String url) throws Exception {
    try (Connection connection = Nats.connect(url)) {
      KeyValueManagement kvm = connection.keyValueManagement();
      try {
        kvm.getStatus(BUCKET);
      } catch (JetStreamApiException e) {
        kvm.create(KeyValueConfiguration.builder().name(BUCKET).maxHistoryPerKey(5).build());
      }
    }
  }

  private static byte[] utf8(String value) {
    return value.getBytes(StandardCharsets.UTF_8);
  }
}
