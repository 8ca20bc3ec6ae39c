package dev.natsio.integration.bench;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.integration.FlinkPipelines;
import io.nats.client.Connection;
import io.nats.client.JetStreamApiException;
import io.nats.client.KeyValue;
import io.nats.client.KeyValueManagement;
import io.nats.client.api.KeyValueConfiguration;
import io.nats.client.api.KeyValueEntry;
import io.nats.client.api.KeyValueWatcher;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamState;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.coders.ByteArrayCoder;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.Impulse;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.TypeDescriptor;

/**
 * Key/Value bucket cases against jnats's own {@code KeyValue} API, measured like the stream cases
 * ({@link Cases}): a snapshot read from the first to the last entry seen, puts from the first to
 * the last revision the server stored (by the server's clock).
 */
final class KeyValueCases {
  private KeyValueCases() {}

  /** A fresh file-stored bucket keeping {@code history} revisions per key. */
  static KeyValue createBucket(Connection connection, String bucket, int history) throws Exception {
    KeyValueManagement kvm = connection.keyValueManagement();
    try {
      kvm.delete(bucket);
    } catch (JetStreamApiException e) {
      // It did not exist.
    }
    kvm.create(KeyValueConfiguration.builder().name(bucket).maxHistoryPerKey(history).storageType(StorageType.File).build());
    return connection.keyValue(bucket);
  }

  /** Fills a fresh bucket with {@code keys} keys of {@code size} bytes, {@code revisions} puts each. */
  static void fill(Connection connection, String bucket, int history, long keys, int revisions, int size) throws Exception {
    createBucket(connection, bucket, history);
    // Through the stream the bucket is (async publishes): what jnats's put sends, without a round trip each.
    for (int revision = 0; revision < revisions; revision++) {
      long round = revision;
      dev.natsio.beam.testing.JetStreamTestData.publish(connection, i -> "$KV." + bucket + ".k." + i, Math.toIntExact(keys),
          i -> Cases.payload(i + round, size), i -> null);
    }
  }

  /** The snapshot baseline: jnats's {@code watchAll}, the latest revision of every key, until its end of data. */
  static Cases.Timed rawSnapshot(Connection connection, String bucket, long keys) throws Exception {
    long start = System.nanoTime();
    AtomicLong count = new AtomicLong();
    AtomicLong first = new AtomicLong();
    AtomicLong last = new AtomicLong();
    CountDownLatch done = new CountDownLatch(1);
    var watch = connection.keyValue(bucket).watchAll(new KeyValueWatcher() {
      @Override
      public void watch(KeyValueEntry entry) {
        long now = System.nanoTime();
        if (count.getAndIncrement() == 0) {
          first.set(now);
        }
        last.set(now);
      }

      @Override
      public void endOfData() {
        done.countDown();
      }
    });
    try {
      if (!done.await(10, TimeUnit.MINUTES) || count.get() != keys) {
        throw new IllegalStateException("jnats watchAll of " + bucket + " gave " + count.get() + " of " + keys + " keys");
      }
    } finally {
      watch.unsubscribe();
    }
    return new Cases.Timed((keys - 1) * 1e9 / (last.get() - first.get()), (System.nanoTime() - start) / 1e9);
  }

  /** NatsIO.readKeyValue() bounded snapshot on Flink batch. */
  static Cases.Timed flinkSnapshot(String url, String bucket, long keys, int parallelism) {
    String id = "kv-snapshot-" + UUID.randomUUID();
    Pipeline pipeline = FlinkPipelines.batch(parallelism);
    pipeline
        .apply(NatsIO.readKeyValue().withServers(url).withBucket(bucket).withStopAtCurrentRevision())
        .apply(MapElements.into(TypeDescriptor.of(NatsMessage.class)).via(e -> NatsMessage.create(e.getKey(), e.getValue())))
        .apply(Probes.countInto(id));
    return Cases.runCounted(pipeline, id, keys, "snapshot of bucket " + bucket);
  }

  /** The put baseline: jnats's {@code KeyValue.put}, one key after another (its API has no asynchronous put). */
  static Cases.Timed rawPuts(Connection connection, String bucket, long keys, int size) throws Exception {
    KeyValue kv = createBucket(connection, bucket, 1);
    long start = System.nanoTime();
    for (long i = 0; i < keys; i++) {
      kv.put("k." + i, Cases.payload(i, size));
    }
    double wall = (System.nanoTime() - start) / 1e9;
    return new Cases.Timed(storedRate(connection, bucket, keys), wall);
  }

  /** NatsIO.writeKeyValue() on Flink batch: the same keys and values as the baseline's. */
  static Cases.Timed flinkPuts(Connection connection, String url, String bucket, long keys, int size, int parallelism) throws Exception {
    createBucket(connection, bucket, 1);
    Pipeline pipeline = FlinkPipelines.batch(parallelism);
    pipeline
        .apply(Impulse.create())
        .apply(ParDo.of(new GenerateFn(keys, size)))
        .setCoder(KvCoder.of(StringUtf8Coder.of(), ByteArrayCoder.of()))
        .apply(NatsIO.writeKeyValue().withServers(url).withBucket(bucket));
    long start = System.nanoTime();
    PipelineResult.State state = pipeline.run().waitUntilFinish();
    double wall = (System.nanoTime() - start) / 1e9;
    if (state != PipelineResult.State.DONE) {
      throw new IllegalStateException("put job ended " + state);
    }
    return new Cases.Timed(storedRate(connection, bucket, keys), wall);
  }

  /** Emits the put cases' elements from one element, as the baseline's loop makes them. */
  static final class GenerateFn extends DoFn<byte[], KV<String, byte[]>> {
    private final long keys;
    private final int size;

    GenerateFn(long keys, int size) {
      this.keys = keys;
      this.size = size;
    }

    @ProcessElement
    public void process(OutputReceiver<KV<String, byte[]>> out) {
      for (long i = 0; i < keys; i++) {
        out.output(KV.of("k." + i, Cases.payload(i, size)));
      }
    }
  }

  private static double storedRate(Connection connection, String bucket, long keys) throws Exception {
    StreamState state = connection.jetStreamManagement().getStreamInfo("KV_" + bucket).getStreamState();
    if (state.getMsgCount() != keys) {
      throw new IllegalStateException("bucket " + bucket + " holds " + state.getMsgCount() + " revisions, expected " + keys);
    }
    return (keys - 1) * 1e9 / Duration.between(state.getFirstTime(), state.getLastTime()).toNanos();
  }
}
