package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.nullValue;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.KeyValue;
import io.nats.client.api.KeyValueConfiguration;
import io.nats.client.api.KeyValueEntry;
import io.nats.client.api.KeyValueWatcher;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.Pipeline.PipelineExecutionException;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.coders.ByteArrayCoder;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.NullableCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.errorhandling.BadRecord;
import org.apache.beam.sdk.transforms.errorhandling.ErrorHandler.BadRecordErrorHandler;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;

/** Key/Value bucket reads and writes on the Direct runner against a real nats-server, checked with jnats's own KV API. */
public class NatsIOKeyValueTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();
  @Rule public final transient TestPipeline rerun = TestPipeline.create();

  private final Connection connection = SERVER.sharedConnection();

  // ---- Read ------------------------------------------------------------------------------------

  @Test
  public void snapshotOfTenThousandKeysWithUpdatesAndDeletesIsTheBucketsLatestRevisionOfEachKey() throws Exception {
    KeyValue kv = bucket("snapshot", 3);
    for (int i = 0; i < 10_000; i++) {
      kv.put("k." + i, utf8("v" + i));
    }
    for (int i = 0; i < 10_000; i += 5) {
      kv.put("k." + i, utf8("updated" + i)); // 2,000 keys at their second revision
    }
    for (int i = 1; i < 10_000; i += 10) {
      kv.delete("k." + i); // 1,000 deletes
    }
    for (int i = 3; i < 10_000; i += 100) {
      kv.purge("k." + i); // 100 purges
    }
    List<String> expected = describeAll(latestPerKey(kv));
    assertThat(expected.size(), equalTo(10_000));
    assertThat("jnats's buckets allow direct gets, which the lookups use",
        connection.jetStreamManagement().getStreamInfo("KV_snapshot").getConfiguration().getAllowDirect(), equalTo(true));

    PCollection<NatsKeyValue> entries =
        pipeline.apply(NatsIO.readKeyValue().withServers(SERVER.url()).withBucket("snapshot").withStopAtCurrentRevision());

    PAssert.that(entries.apply(MapElements.into(TypeDescriptors.strings()).via(NatsIOKeyValueTest::describe)))
        .containsInAnyOrder(expected);
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void snapshotOfABucketWithoutDirectGetsIsTheLatestRevisionOfEachKey() throws Exception {
    // A bucket's stream made by hand without allow_direct: the lookups use the JetStream API's message get.
    connection.jetStreamManagement().addStream(StreamConfiguration.builder()
        .name("KV_nodirect").subjects("$KV.nodirect.>").maxMessagesPerSubject(3).allowRollup(true).denyDelete(true)
        .allowDirect(false).storageType(StorageType.Memory).build());
    KeyValue kv = connection.keyValue("nodirect");
    for (int round = 0; round < 3; round++) {
      for (int i = 0; i < 200; i++) {
        kv.put("n." + i, utf8("r" + round + "-" + i));
      }
    }
    kv.delete("n.7");
    List<String> expected = describeAll(latestPerKey(kv));

    PCollection<NatsKeyValue> entries =
        pipeline.apply(NatsIO.readKeyValue().withServers(SERVER.url()).withBucket("nodirect").withStopAtCurrentRevision());

    PAssert.that(entries.apply(MapElements.into(TypeDescriptors.strings()).via(NatsIOKeyValueTest::describe)))
        .containsInAnyOrder(expected);
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void historyReadsEveryRevisionTheBucketHolds() throws Exception {
    KeyValue kv = bucket("history", 10);
    for (int round = 0; round < 3; round++) {
      for (int i = 0; i < 50; i++) {
        kv.put("h." + i, utf8("r" + round + "-" + i));
      }
    }
    kv.delete("h.1");
    kv.purge("h.2");
    List<KeyValueEntry> all = new ArrayList<>();
    for (int i = 0; i < 50; i++) {
      all.addAll(kv.history("h." + i));
    }

    PCollection<NatsKeyValue> entries = pipeline.apply(
        NatsIO.readKeyValue().withServers(SERVER.url()).withBucket("history").withHistory().withStopAtCurrentRevision());

    PAssert.that(entries.apply(MapElements.into(TypeDescriptors.strings()).via(NatsIOKeyValueTest::describe)))
        .containsInAnyOrder(describeAll(all));
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void keyFilterReadsOnlyMatchingKeys() throws Exception {
    KeyValue kv = bucket("filtered", 1);
    kv.put("app.color", utf8("blue"));
    kv.put("app.size", utf8("9"));
    kv.put("other.color", utf8("red"));

    PCollection<NatsKeyValue> entries = pipeline.apply(
        NatsIO.readKeyValue().withServers(SERVER.url()).withBucket("filtered").withKeys("app.>").withStopAtCurrentRevision());

    PAssert.that(entries.apply(MapElements.into(TypeDescriptors.strings()).via(NatsKeyValue::getKey)))
        .containsInAnyOrder("app.color", "app.size");
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void snapshotOfAnEmptyBucketIsEmpty() throws Exception {
    bucket("empty", 3);

    PCollection<NatsKeyValue> entries =
        pipeline.apply(NatsIO.readKeyValue().withServers(SERVER.url()).withBucket("empty").withStopAtCurrentRevision());

    PAssert.that(entries).empty();
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void readOfAMissingBucketFailsNamingTheBucket() {
    pipeline.apply(NatsIO.readKeyValue().withServers(SERVER.url()).withBucket("nosuchbucket").withStopAtCurrentRevision());

    PipelineExecutionException failure = assertThrows(PipelineExecutionException.class, () -> pipeline.run().waitUntilFinish());
    assertThat(failure.getMessage(), containsString("Key/Value bucket 'nosuchbucket' does not exist"));
  }

  @Test
  public void historyReadOfAMissingBucketFailsNamingTheBucket() {
    pipeline.apply(NatsIO.readKeyValue().withServers(SERVER.url()).withBucket("nosuchhistory").withHistory().withStopAtCurrentRevision());

    PipelineExecutionException failure = assertThrows(PipelineExecutionException.class, () -> pipeline.run().waitUntilFinish());
    assertThat(failure.getMessage(), containsString("Key/Value bucket 'nosuchhistory' does not exist"));
  }

  @Test
  public void anInvalidBucketNameIsRefusedAtConstruction() {
    Pipeline unrun = Pipeline.create(PipelineOptionsFactory.create());
    IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
        () -> unrun.apply(NatsIO.readKeyValue().withServers(SERVER.url()).withBucket("a.b")));
    assertThat(error.getMessage(), containsString("withBucket(\"a.b\")"));
  }

  // ---- Write -----------------------------------------------------------------------------------

  @Test
  public void writtenPutsAndDeletesAreReadBackWithTheirRevisions() throws Exception {
    KeyValue kv = bucket("written", 5);
    kv.put("gone", utf8("soon deleted"));
    PCollection<KV<String, Long>> revisions = updates(pipeline,
            KV.of("a", utf8("1")), KV.of("b.c", utf8("2")), KV.of("gone", null))
        .apply(NatsIO.writeKeyValue().withServers(SERVER.url()).withBucket("written"));
    PAssert.that(revisions.apply(MapElements.into(TypeDescriptors.strings()).via(KV::getKey)))
        .containsInAnyOrder("a", "b.c", "gone");
    pipeline.run().waitUntilFinish();

    assertThat(kv.get("a").getValueAsString(), equalTo("1"));
    assertThat(kv.get("b.c").getValueAsString(), equalTo("2"));
    assertThat("a null value deletes the key", kv.get("gone"), nullValue());

    PCollection<NatsKeyValue> readBack = rerun.apply(
        NatsIO.readKeyValue().withServers(SERVER.url()).withBucket("written").withStopAtCurrentRevision());
    PAssert.that(readBack.apply(MapElements.into(TypeDescriptors.strings()).via(NatsIOKeyValueTest::describe)))
        .containsInAnyOrder(describeAll(latestPerKey(kv)));
    rerun.run().waitUntilFinish();
  }

  @Test
  public void compareAndSetConflictsGoToTheErrorHandlerAndTheRestIsStored() throws Exception {
    KeyValue kv = bucket("cas", 1);
    long current = kv.put("held", utf8("old"));
    Map<String, Long> expected = new HashMap<>();
    expected.put("held", current + 100); // not its revision: a conflict
    expected.put("fresh", 0L); // must not exist yet: stored
    expected.put("matching", null); // no check

    BadRecordErrorHandler<PCollection<Long>> errors = pipeline.registerBadRecordErrorHandler(new CountBadRecords());
    updates(pipeline, KV.of("held", utf8("new")), KV.of("fresh", utf8("f")), KV.of("matching", utf8("m")))
        .apply(NatsIO.writeKeyValue().withServers(SERVER.url()).withBucket("cas")
            .withExpectedRevisionFn(element -> expected.get(element.getKey()))
            .withBadRecordErrorHandler(errors));
    errors.close();
    PAssert.thatSingleton(errors.getOutput()).isEqualTo(1L);
    pipeline.run().waitUntilFinish();

    assertThat(kv.get("held").getValueAsString(), equalTo("old"));
    assertThat(kv.get("fresh").getValueAsString(), equalTo("f"));
    assertThat(kv.get("matching").getValueAsString(), equalTo("m"));
  }

  @Test
  public void aCompareAndSetPutRunAgainIsNotAConflict() throws Exception {
    KeyValue kv = bucket("casretry", 1);
    long current = kv.put("k", utf8("old"));
    for (TestPipeline run : List.of(pipeline, rerun)) {
      // The same elements twice, as a runner retrying a bundle would send them.
      BadRecordErrorHandler<PCollection<Long>> errors = run.registerBadRecordErrorHandler(new CountBadRecords());
      PCollection<KV<String, Long>> revisions = updates(run, KV.of("k", utf8("new")))
          .apply(NatsIO.writeKeyValue().withServers(SERVER.url()).withBucket("casretry")
              .withExpectedRevisionFn(element -> current)
              .withBadRecordErrorHandler(errors));
      errors.close();
      PAssert.thatSingleton(errors.getOutput()).isEqualTo(0L);
      PAssert.that(revisions).containsInAnyOrder(KV.of("k", current + 1));
      run.run().waitUntilFinish();
    }
    assertThat(kv.get("k").getRevision(), equalTo(current + 1));
  }

  @Test
  public void anInvalidKeyFailsTheWriteNamingTheKeyBeforeItIsPublished() throws Exception {
    KeyValue kv = bucket("badkeys", 1);
    updates(pipeline, KV.of("has space", utf8("x")))
        .apply(NatsIO.writeKeyValue().withServers(SERVER.url()).withBucket("badkeys"));

    PipelineExecutionException failure = assertThrows(PipelineExecutionException.class, () -> pipeline.run().waitUntilFinish());
    assertThat(failure.getMessage(), containsString("refused key 'has space'"));
    assertThat(connection.jetStreamManagement().getStreamInfo("KV_badkeys").getStreamState().getMsgCount(), equalTo(0L));
  }

  @Test
  public void invalidKeysGoToTheErrorHandlerAndValidOnesAreStored() throws Exception {
    KeyValue kv = bucket("badkeysrouted", 1);
    BadRecordErrorHandler<PCollection<Long>> errors = pipeline.registerBadRecordErrorHandler(new CountBadRecords());
    updates(pipeline, KV.of("ok", utf8("1")), KV.of("wild.*", utf8("2")), KV.of("trailing.", utf8("3")), KV.of("", utf8("4")))
        .apply(NatsIO.writeKeyValue().withServers(SERVER.url()).withBucket("badkeysrouted").withBadRecordErrorHandler(errors));
    errors.close();
    PAssert.thatSingleton(errors.getOutput()).isEqualTo(3L);
    pipeline.run().waitUntilFinish();

    assertThat(kv.get("ok").getValueAsString(), equalTo("1"));
    assertThat(connection.jetStreamManagement().getStreamInfo("KV_badkeysrouted").getStreamState().getMsgCount(), equalTo(1L));
  }

  // ---- Helpers ---------------------------------------------------------------------------------

  private KeyValue bucket(String name, int history) throws Exception {
    connection.keyValueManagement().create(
        KeyValueConfiguration.builder().name(name).maxHistoryPerKey(history).storageType(StorageType.Memory).build());
    return connection.keyValue(name);
  }

  @SafeVarargs
  private static PCollection<KV<String, byte[]>> updates(TestPipeline pipeline, KV<String, byte[]>... updates) {
    return pipeline.apply(Create.of(Arrays.asList(updates))
        .withCoder(KvCoder.of(StringUtf8Coder.of(), NullableCoder.of(ByteArrayCoder.of()))));
  }

  /** What jnats's own watcher gives for every key: its latest revision, deletes and purges included. */
  private static List<KeyValueEntry> latestPerKey(KeyValue kv) throws Exception {
    List<KeyValueEntry> entries = new ArrayList<>();
    CountDownLatch done = new CountDownLatch(1);
    kv.watchAll(new KeyValueWatcher() {
      @Override
      public void watch(KeyValueEntry entry) {
        synchronized (entries) {
          entries.add(entry);
        }
      }

      @Override
      public void endOfData() {
        done.countDown();
      }
    });
    assertThat("jnats's watcher finished", done.await(60, TimeUnit.SECONDS), equalTo(true));
    synchronized (entries) {
      return new ArrayList<>(entries);
    }
  }

  private static List<String> describeAll(List<KeyValueEntry> entries) {
    List<String> described = new ArrayList<>();
    for (KeyValueEntry entry : entries) {
      byte[] value = entry.getValue() == null ? new byte[0] : entry.getValue();
      described.add(entry.getKey() + "@" + entry.getRevision() + " " + entry.getOperation().name() + " " + new String(value, StandardCharsets.UTF_8));
    }
    return described;
  }

  private static String describe(NatsKeyValue entry) {
    return entry.getKey() + "@" + entry.getRevision() + " " + entry.getOperation() + " " + entry.getValueAsString();
  }

  private static byte[] utf8(String value) {
    return value.getBytes(StandardCharsets.UTF_8);
  }

  /** Counts the bad records. */
  private static final class CountBadRecords
      extends org.apache.beam.sdk.transforms.PTransform<PCollection<BadRecord>, PCollection<Long>> {
    @Override
    public PCollection<Long> expand(PCollection<BadRecord> input) {
      return input.apply(Count.globally());
    }
  }
}
