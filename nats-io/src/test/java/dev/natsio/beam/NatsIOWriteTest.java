package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.everyItem;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.lessThan;
import static org.hamcrest.Matchers.not;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.NatsTestServer;
import dev.natsio.beam.testing.SequenceSummary;
import io.nats.client.Connection;
import io.nats.client.IterableConsumer;
import io.nats.client.Message;
import io.nats.client.Subscription;
import io.nats.client.api.DiscardPolicy;
import io.nats.client.api.OrderedConsumerConfiguration;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.LongStream;
import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.Pipeline.PipelineExecutionException;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.io.GenerateSequence;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.transforms.errorhandling.BadRecord;
import org.apache.beam.sdk.transforms.errorhandling.ErrorHandler.BadRecordErrorHandler;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;

/** Core and JetStream writes on the Direct runner against a real nats-server, read back with plain jnats. */
public class NatsIOWriteTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();
  @Rule public final transient TestPipeline rerun = TestPipeline.create();

  private final Connection connection = SERVER.sharedConnection();

  private static NatsIO.Write jetStreamWrite(String url) {
    return NatsIO.write().withServers(url).withJetStream();
  }

  /** Messages {@code subject} with payloads "m0".."m(count-1)". */
  private static PCollection<NatsMessage> messages(Pipeline pipeline, String subject, int count) {
    return pipeline
        .apply("Indices " + subject, Create.of(IntStream.range(0, count).boxed().collect(Collectors.toList())))
        .apply("Messages " + subject, MapElements.into(TypeDescriptor.of(NatsMessage.class))
            .via(i -> NatsMessage.create(subject, utf8("m" + i))));
  }

  // ---- JetStream -------------------------------------------------------------------------------

  @Test
  public void hundredThousandMessagesAreStoredOnceEachInOrderPerWriterWithTheirHeaders() throws Exception {
    int writers = 10;
    int perWriter = 10_000;
    int count = writers * perWriter;
    createStream(connection, "written", "written.>");

    // Each writer index becomes 10,000 messages emitted by one DoFn call, so they reach the write in
    // one bundle, in order: the stream must hold them in that order.
    PCollection<NatsMessage> messages =
        pipeline.apply(Create.of(IntStream.range(0, writers).boxed().collect(Collectors.toList())))
            .apply(ParDo.of(new WriterMessagesFn("written.w", perWriter)));
    NatsIO.WriteResult written = messages.apply(jetStreamWrite(SERVER.url()));

    PCollection<Long> sequences = written.getPublishResults()
        .apply("Sequences", MapElements.into(TypeDescriptors.longs()).via(NatsPublishResult::getSequence));
    PAssert.thatSingleton(sequences.apply(SequenceSummary.globally())).isEqualTo(SequenceSummary.exactlyOnce(1, count));
    PCollection<KV<String, Long>> kinds = written.getPublishResults()
        .apply("Kinds", MapElements.into(TypeDescriptors.strings()).via(r -> r.getStream() + " duplicate=" + r.isDuplicate()))
        .apply("Count kinds", Count.perElement());
    PAssert.that(kinds).containsInAnyOrder(KV.of("written duplicate=false", (long) count));
    long started = System.nanoTime();
    pipeline.run().waitUntilFinish();
    double seconds = (System.nanoTime() - started) / 1e9;
    System.out.printf("Wrote %,d messages to JetStream through the Direct runner in %.1f s: %,.0f msgs/s end to end%n",
        count, seconds, count / seconds);

    List<Message> stored = readStream("written");
    assertThat(stored.size(), equalTo(count));
    Map<Integer, Integer> lastIndexByWriter = new HashMap<>();
    Set<String> payloads = new HashSet<>();
    for (Message message : stored) {
      String payload = new String(message.getData(), StandardCharsets.UTF_8);
      payloads.add(payload);
      int writer = Integer.parseInt(message.getHeaders().getFirst("writer"));
      int index = Integer.parseInt(message.getHeaders().getFirst("index"));
      assertThat(payload, equalTo("w" + writer + "-" + index));
      assertThat(message.getSubject(), equalTo("written.w" + writer));
      assertThat(message.getHeaders().get("tag"), equalTo(index % 10 == 0 ? List.of("a", "b") : null));
      assertThat("order of writer " + writer, index, equalTo(lastIndexByWriter.getOrDefault(writer, -1) + 1));
      lastIndexByWriter.put(writer, index);
    }
    assertThat(payloads.size(), equalTo(count));
  }

  /** Emits {@code perWriter} messages "w<writer>-<index>" to subject prefix + writer, with headers naming both. */
  private static final class WriterMessagesFn extends DoFn<Integer, NatsMessage> {
    private final String subjectPrefix;
    private final int perWriter;

    WriterMessagesFn(String subjectPrefix, int perWriter) {
      this.subjectPrefix = subjectPrefix;
      this.perWriter = perWriter;
    }

    @ProcessElement
    public void process(@Element Integer writer, OutputReceiver<NatsMessage> out) {
      for (int i = 0; i < perWriter; i++) {
        Map<String, List<String>> headers = new HashMap<>();
        headers.put("writer", List.of(String.valueOf(writer)));
        headers.put("index", List.of(String.valueOf(i)));
        if (i % 10 == 0) {
          headers.put("tag", List.of("a", "b"));
        }
        out.output(NatsMessage.create(subjectPrefix + writer, utf8("w" + writer + "-" + i), headers));
      }
    }
  }

  @Test
  public void sameElementsWrittenTwiceWithAMessageIdFunctionAreStoredOnce() throws Exception {
    createStream(connection, "twice", "twice.>");
    NatsIO.Write write = jetStreamWrite(SERVER.url()).withMessageIdFn(m -> "id-" + m.getPayloadAsString());

    PCollection<NatsPublishResult> first = messages(pipeline, "twice.x", 1_000).apply(write).getPublishResults();
    PAssert.that(duplicateFlags(first)).containsInAnyOrder(KV.of("duplicate=false", 1_000L));
    pipeline.run().waitUntilFinish();

    PCollection<NatsPublishResult> second = messages(rerun, "twice.x", 1_000).apply(write).getPublishResults();
    PAssert.that(duplicateFlags(second)).containsInAnyOrder(KV.of("duplicate=true", 1_000L));
    PAssert.that(second.apply("Sequences", MapElements.into(TypeDescriptors.longs()).via(NatsPublishResult::getSequence)))
        .containsInAnyOrder(LongStream.rangeClosed(1, 1_000).boxed().collect(Collectors.toList()));
    rerun.run().waitUntilFinish();

    assertThat(connection.jetStreamManagement().getStreamInfo("twice").getStreamState().getMsgCount(), equalTo(1_000L));
  }

  private static PCollection<KV<String, Long>> duplicateFlags(PCollection<NatsPublishResult> results) {
    return results
        .apply("Duplicate flags", MapElements.into(TypeDescriptors.strings()).via(r -> "duplicate=" + r.isDuplicate()))
        .apply("Count flags", Count.perElement());
  }

  @Test
  public void serverKilledAndRestartedDuringAWriteEndsWithEachMessageStoredExactlyOnce() throws Exception {
    int count = 50_000;
    try (NatsTestServer server = NatsTestServer.jetStream().start(); Connection local = server.connect()) {
      createStream(local, "survivor", "survivor.>");
      DirectOptions options = PipelineOptionsFactory.create().as(DirectOptions.class);
      options.setBlockOnRun(false);
      Pipeline writing = Pipeline.create(options);
      writing
          .apply(GenerateSequence.from(0).to(count))
          .apply(ParDo.of(new ThrottleFn()))
          .apply(MapElements.into(TypeDescriptor.of(NatsMessage.class)).via(i -> NatsMessage.create("survivor.x", utf8("m" + i))))
          .apply(jetStreamWrite(server.url()).withMessageIdFn(NatsMessage::getPayloadAsString));
      PipelineResult result = writing.run();

      long storedAtKill = awaitStored(local, "survivor", count / 5, 60_000);
      server.kill();
      // Down for longer than the publish timeout: publishes sent meanwhile must time out and be retried.
      Thread.sleep(WriteToJetStreamDoFn.PUBLISH_TIMEOUT_MILLIS + 1_000);
      server.restart();
      PipelineResult.State state = result.waitUntilFinish(org.joda.time.Duration.standardMinutes(3));

      assertThat(state, equalTo(PipelineResult.State.DONE));
      assertThat("messages stored when the server was killed", storedAtKill, lessThan((long) count));
      assertThat("publishes retried", counter(result, "publishRetries"), greaterThan(0L));
      List<Message> stored = readStream(local, "survivor");
      Set<String> payloads = stored.stream().map(m -> new String(m.getData(), StandardCharsets.UTF_8)).collect(Collectors.toSet());
      assertThat("stored messages", stored.size(), equalTo(count));
      assertThat(payloads, equalTo(IntStream.range(0, count).mapToObj(i -> "m" + i).collect(Collectors.toSet())));
    }
  }

  /** Slows the input to about 10,000 elements a second per thread, so a kill lands mid-write. */
  private static final class ThrottleFn extends DoFn<Long, Long> {
    @ProcessElement
    public void process(@Element Long i, OutputReceiver<Long> out) throws InterruptedException {
      if (i % 10 == 0) {
        Thread.sleep(1);
      }
      out.output(i);
    }
  }

  private static long awaitStored(Connection local, String stream, long atLeast, long timeoutMillis) throws Exception {
    long deadline = System.currentTimeMillis() + timeoutMillis;
    while (true) {
      long stored = local.jetStreamManagement().getStreamInfo(stream).getStreamState().getMsgCount();
      if (stored >= atLeast) {
        return stored;
      }
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("Only " + stored + " messages stored in '" + stream + "' after " + timeoutMillis + " ms");
      }
      Thread.sleep(20);
    }
  }

  private static long counter(PipelineResult result, String name) {
    long total = 0;
    for (MetricResult<Long> counter : result.metrics()
        .queryMetrics(MetricsFilter.builder().addNameFilter(MetricNameFilter.named("NatsIO", name)).build())
        .getCounters()) {
      total += counter.getAttempted();
    }
    return total;
  }

  @Test
  public void subjectNoStreamCapturesFailsWithAnErrorNamingTheSubject() {
    messages(pipeline, "nowhere.x", 10).apply(jetStreamWrite(SERVER.url()));

    PipelineExecutionException error = assertThrows(PipelineExecutionException.class, () -> pipeline.run().waitUntilFinish());
    assertThat(error.getCause(), org.hamcrest.Matchers.instanceOf(NatsIOException.class));
    assertThat(error.getCause().getMessage(), containsString("subject 'nowhere.x'"));
    assertThat(error.getCause().getMessage(), containsString("no stream captures this subject"));
  }

  @Test
  public void payloadOverTheServersMaxPayloadGoesToTheErrorHandler() throws Exception {
    try (NatsTestServer small = NatsTestServer.builder().withMaxPayload(1_024).build().start(); Connection local = small.connect()) {
      createStream(local, "small", "small.>");
      PCollection<NatsMessage> messages =
          pipeline.apply(Create.of(IntStream.range(0, 20).boxed().collect(Collectors.toList())))
              .apply(MapElements.into(TypeDescriptor.of(NatsMessage.class))
                  .via(i -> NatsMessage.create("small.x", new byte[i % 5 == 0 ? 2_000 : 100])));
      BadRecordErrorHandler<PCollection<String>> errors = pipeline.registerBadRecordErrorHandler(new Descriptions());
      messages.apply(jetStreamWrite(small.url()).withBadRecordErrorHandler(errors));
      errors.close();

      PAssert.that(errors.getOutput()).satisfies(descriptions -> {
        List<String> all = new ArrayList<>();
        descriptions.forEach(all::add);
        assertThat(all.size(), equalTo(4));
        assertThat(all, everyItem(containsString("subject 'small.x'")));
        assertThat(all, everyItem(containsString("2000 vs 1024")));
        return null;
      });
      pipeline.run().waitUntilFinish();

      assertThat(local.jetStreamManagement().getStreamInfo("small").getStreamState().getMsgCount(), equalTo(16L));
    }
  }

  @Test
  public void messagesTheStreamRefusesGoToTheErrorHandlerWithTheServersReason() throws Exception {
    createStream(connection, StreamConfiguration.builder().name("capped").subjects("capped.>")
        .maxMessages(5).discardPolicy(DiscardPolicy.New).storageType(StorageType.File).build());
    BadRecordErrorHandler<PCollection<String>> errors = pipeline.registerBadRecordErrorHandler(new Descriptions());
    PCollection<NatsPublishResult> results =
        messages(pipeline, "capped.x", 8).apply(jetStreamWrite(SERVER.url()).withBadRecordErrorHandler(errors)).getPublishResults();
    errors.close();

    PAssert.that(errors.getOutput()).satisfies(descriptions -> {
      List<String> all = new ArrayList<>();
      descriptions.forEach(all::add);
      assertThat(all.size(), equalTo(3));
      assertThat(all, everyItem(containsString("JetStream refused the message for subject 'capped.x'")));
      assertThat(all, everyItem(containsString("maximum messages exceeded")));
      return null;
    });
    PAssert.thatSingleton(results.apply(Count.globally())).isEqualTo(5L);
    pipeline.run().waitUntilFinish();

    assertThat(connection.jetStreamManagement().getStreamInfo("capped").getStreamState().getMsgCount(), equalTo(5L));
  }

  /** An error sink for tests: the description of each bad record. */
  private static final class Descriptions extends PTransform<PCollection<BadRecord>, PCollection<String>> {
    @Override
    public PCollection<String> expand(PCollection<BadRecord> input) {
      return input.apply(MapElements.into(TypeDescriptors.strings()).via(r -> r.getFailure().getDescription()));
    }
  }

  @Test
  public void withSubjectPublishesEveryMessageToThatSubject() throws Exception {
    createStream(connection, "routed", "routed.>");

    messages(pipeline, "elsewhere.x", 50).apply(jetStreamWrite(SERVER.url()).withSubject("routed.all"));
    pipeline.run().waitUntilFinish();

    List<Message> stored = readStream("routed");
    assertThat(stored.size(), equalTo(50));
    assertThat(stored.stream().map(Message::getSubject).collect(Collectors.toSet()), equalTo(Set.of("routed.all")));
  }

  @Test
  public void withSubjectFnPublishesEachMessageToTheSubjectItGives() throws Exception {
    createStream(connection, "byfn", "byfn.>");

    messages(pipeline, "ignored", 40).apply(jetStreamWrite(SERVER.url())
        .withSubjectFn(m -> "byfn." + (Integer.parseInt(m.getPayloadAsString().substring(1)) % 2 == 0 ? "even" : "odd")));
    pipeline.run().waitUntilFinish();

    for (Message message : readStream("byfn")) {
      int index = Integer.parseInt(new String(message.getData(), StandardCharsets.UTF_8).substring(1));
      assertThat(message.getSubject(), equalTo(index % 2 == 0 ? "byfn.even" : "byfn.odd"));
    }
    assertThat(connection.jetStreamManagement().getStreamInfo("byfn").getStreamState().getMsgCount(), equalTo(40L));
  }

  // ---- Core ------------------------------------------------------------------------------------

  @Test
  public void coreWritesFromManyBundlesAtOnceAllReachASubscriberWithTheirHeaders() throws Exception {
    int writers = 20;
    int perWriter = 2_500;
    int count = writers * perWriter;
    Subscription subscription = connection.subscribe("core.>");
    connection.flush(Duration.ofSeconds(5));

    // Twenty bundles on twenty threads finishing together flush one shared connection at the same time.
    pipeline.getOptions().as(DirectOptions.class).setTargetParallelism(writers);
    PCollection<NatsMessage> messages =
        pipeline.apply(Create.of(IntStream.range(0, writers).boxed().collect(Collectors.toList())))
            .apply(ParDo.of(new WriterMessagesFn("core.w", perWriter)));
    NatsIO.WriteResult written = messages.apply(NatsIO.write().withServers(SERVER.url()));
    PAssert.that(written.getPublishResults()).empty();
    pipeline.run().waitUntilFinish();

    Set<String> received = new HashSet<>();
    for (int n = 0; n < count; n++) {
      Message message = subscription.nextMessage(Duration.ofSeconds(10));
      assertThat("message " + n + " of " + count, message, not(equalTo(null)));
      String payload = new String(message.getData(), StandardCharsets.UTF_8);
      assertThat(payload, equalTo("w" + message.getHeaders().getFirst("writer") + "-" + message.getHeaders().getFirst("index")));
      received.add(payload);
    }
    subscription.unsubscribe();
    assertThat(received.size(), equalTo(count));
  }

  // ---- Configuration ---------------------------------------------------------------------------

  @Test
  public void displayDataShowsTheSettingsButNoPassword() {
    NatsIO.Write write = NatsIO.write()
        .withConnectionConfiguration(NatsIO.ConnectionConfiguration.create("nats://alice:s3cret-url@127.0.0.1:4222")
            .withUsernamePassword("bob", "s3cret-password"))
        .withJetStream()
        .withSubject("orders.out")
        .withExpectedStream("orders");

    DisplayData displayData = DisplayData.from(write);

    String shown = displayData.items().stream().map(item -> item.getKey() + "=" + item.getValue()).collect(Collectors.joining(" "));
    assertThat(shown, not(containsString("s3cret")));
    assertThat(shown, containsString("servers=nats://127.0.0.1:4222"));
    assertThat(shown, containsString("subject=orders.out"));
    assertThat(shown, containsString("publishTo=JetStream"));
    assertThat(shown, containsString("credentials=(set, hidden)"));
  }

  @Test
  public void messageIdFnWithoutJetStreamIsRefusedWithAPointerToWithJetStream() {
    pipeline.enableAbandonedNodeEnforcement(false);
    PCollection<NatsMessage> messages = messages(pipeline, "core.x", 1);

    IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
        () -> messages.apply(NatsIO.write().withServers(SERVER.url()).withMessageIdFn(NatsMessage::getPayloadAsString)));
    assertThat(error.getMessage(), containsString("withJetStream()"));
  }

  @Test
  public void writeWithoutServersIsRefusedWithAPointerToWithServers() {
    pipeline.enableAbandonedNodeEnforcement(false);
    PCollection<NatsMessage> messages = messages(pipeline, "core.x", 1);

    IllegalArgumentException error = assertThrows(IllegalArgumentException.class, () -> messages.apply(NatsIO.write()));
    assertThat(error.getMessage(), containsString("withServers("));
  }

  // ---- Helpers ---------------------------------------------------------------------------------

  private static List<Message> readStream(String stream) throws Exception {
    return readStream(SERVER.sharedConnection(), stream);
  }

  /** Every message of {@code stream}, in stream order, read with a plain jnats ordered consumer. */
  private static List<Message> readStream(Connection local, String stream) throws Exception {
    long count = local.jetStreamManagement().getStreamInfo(stream).getStreamState().getMsgCount();
    List<Message> messages = new ArrayList<>();
    IterableConsumer consumer = local.getStreamContext(stream).createOrderedConsumer(new OrderedConsumerConfiguration()).iterate();
    try {
      while (messages.size() < count) {
        Message message = consumer.nextMessage(Duration.ofSeconds(10));
        if (message == null) {
          throw new AssertionError("Read only " + messages.size() + " of " + count + " messages from '" + stream + "'");
        }
        messages.add(message);
      }
    } finally {
      consumer.stop();
    }
    return messages;
  }

  private static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }
}
