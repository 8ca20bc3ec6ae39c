package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;
import static org.hamcrest.Matchers.nullValue;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.NatsTestServer;
import dev.natsio.beam.testing.CollectingSink;
import java.util.List;
import java.util.TreeSet;
import java.util.UUID;
import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.junit.After;
import io.nats.client.Connection;
import io.nats.client.JetStreamManagement;
import io.nats.client.JetStreamSubscription;
import io.nats.client.Message;
import io.nats.client.PullSubscribeOptions;
import io.nats.client.api.ConsumerConfiguration;
import io.nats.client.api.RetentionPolicy;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import java.time.Duration;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.beam.sdk.Pipeline.PipelineExecutionException;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.Filter;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.util.CoderUtils;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Instant;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;

/** Durable-consumer reads ({@code withConsumer}): at-least-once with acks after commit, on the Direct runner. */
public class NatsIODurableConsumerReadTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  private static Connection connection;
  private static JetStreamManagement jsm;
  private PipelineResult running;

  @BeforeClass
  public static void connect() throws Exception {
    connection = SERVER.connect();
    jsm = connection.jetStreamManagement();
  }

  @After
  public void cancel() throws Exception {
    if (running != null) {
      running.cancel();
    }
  }

  @AfterClass
  public static void disconnect() throws InterruptedException {
    connection.close();
  }

  private static void createWorkQueue(String name) throws Exception {
    createStream(connection,
        StreamConfiguration.builder().name(name).subjects(name + ".>").retentionPolicy(RetentionPolicy.WorkQueue).storageType(StorageType.File).build());
  }

  private static NatsIO.Read read(String stream) {
    return NatsIO.read().withServers(SERVER.url()).withStream(stream);
  }

  private static PCollection<Long> sequences(PCollection<NatsMessage> messages) {
    return messages.apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence));
  }

  /** Acks are sent after the bundle commits, asynchronously to the pipeline's end: poll for their effect. */
  private static long awaitStreamMessages(String stream, long expected) throws Exception {
    long deadline = System.currentTimeMillis() + 30_000;
    long messages = jsm.getStreamInfo(stream).getStreamState().getMsgCount();
    while (messages != expected && System.currentTimeMillis() < deadline) {
      Thread.sleep(100);
      messages = jsm.getStreamInfo(stream).getStreamState().getMsgCount();
    }
    return messages;
  }

  /**
   * Starts {@code read} live on the Direct runner at target parallelism 2, collecting the
   * sequences it outputs under the returned id; the test's end cancels it.
   */
  private String collectLive(NatsIO.Read read) {
    DirectOptions options = PipelineOptionsFactory.create().as(DirectOptions.class);
    options.setBlockOnRun(false);
    options.setTargetParallelism(2);
    Pipeline live = Pipeline.create(options);
    String id = "live-" + UUID.randomUUID();
    live.apply(read).apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence)).apply(CollectingSink.into(id));
    running = live.run();
    return id;
  }

  private static NatsIO.Read namedRead(String stream, String connectionName) {
    return NatsIO.read().withConnectionConfiguration(NatsIO.ConnectionConfiguration.create(SERVER.url()).withConnectionName(connectionName))
        .withStream(stream);
  }

  /** Every delivery the consumer made, redeliveries included: its consumer sequence. */
  private static long deliveries(String stream, String consumer) throws Exception {
    return jsm.getConsumerInfo(stream, consumer).getDelivered().getConsumerSequence();
  }

  /**
   * Waits until every sequence 1..count was processed, then checks none was processed twice. An ack
   * follows the read's commit, not the downstream steps', so an empty stream is not enough.
   */
  private static void assertEachOnce(String id, int count) throws Exception {
    List<Long> processed = CollectingSink.<Long>await(id, seen -> new TreeSet<>(seen).size() >= count, 60_000);
    assertThat(new TreeSet<>(processed), equalTo(LongStream.rangeClosed(1, count).boxed().collect(Collectors.toCollection(TreeSet::new))));
    assertThat("messages processed more than once", processed.size() - count, equalTo(0));
  }

  @Test
  public void messagesWaitingLongerThanTheAckWaitForTheirCommitAreDeliveredOnce() throws Exception {
    createWorkQueue("trickle");
    jsm.addOrUpdateConsumer("trickle", ConsumerConfiguration.builder().durable("tricklers").ackWait(Duration.ofSeconds(1)).build());
    String id = collectLive(namedRead("trickle", "trickle").withConsumer("tricklers"));
    // A trickle, so that the Direct runner's bundles last their full second (it commits after 100
    // outputs or 1 s) and the first messages of each wait longer than the ack wait for the commit.
    int perSecond = 40;
    int seconds = 6;
    for (int second = 0; second < seconds; second++) {
      for (int i = 0; i < perSecond; i++) {
        long next = System.currentTimeMillis() + 1_000 / perSecond;
        publish(connection, "trickle.x", 1);
        Thread.sleep(Math.max(0, next - System.currentTimeMillis()));
      }
    }
    int count = perSecond * seconds;

    assertThat(awaitStreamMessages("trickle", 0), equalTo(0L));
    assertEachOnce(id, count);
    assertThat("redeliveries by the server", deliveries("trickle", "tricklers") - count, equalTo(0L));
  }

  @Test
  public void workQueueIsDrainedByAsManyPullersAsTheTargetParallelism() throws Exception {
    createWorkQueue("drain");
    int count = 5_000;
    publish(connection, "drain.x", count);
    jsm.addOrUpdateConsumer("drain", ConsumerConfiguration.builder().durable("drainers").maxAckPending(10_000).build());
    String id = collectLive(namedRead("drain", "drain-pullers").withConsumer("drainers"));

    assertThat(awaitStreamMessages("drain", 0), equalTo(0L));
    assertEachOnce(id, count);
    assertThat("redeliveries by the server", deliveries("drain", "drainers") - count, equalTo(0L));
    List<Long> inboxes = SERVER.inboxDeliveries("drain-pullers");
    assertThat("inbox subscriptions (pullers, request inbox): " + inboxes, inboxes.size(), greaterThanOrEqualTo(3));
    // Both pullers took a share, beyond the few status messages (heartbeats) an idle puller gets.
    assertThat("both pullers delivered messages: " + inboxes, inboxes.get(inboxes.size() - 2), greaterThan(count / 100L));
  }

  @Test
  public void workQueueStreamIsReadAndEveryMessageAckedLeavingItEmpty() throws Exception {
    createWorkQueue("jobs");
    publish(connection, "jobs.x", 1_000);

    PCollection<NatsMessage> messages =
        pipeline.apply(read("jobs").withConsumerConfiguration(ConsumerConfiguration.builder().durable("workers").build()).withMaxNumRecords(1_000));

    PAssert.that(sequences(messages)).containsInAnyOrder(LongStream.rangeClosed(1, 1_000).boxed().collect(Collectors.toList()));
    pipeline.run().waitUntilFinish();
    assertThat(awaitStreamMessages("jobs", 0), equalTo(0L));
  }

  @Test
  public void existingConsumerIsReadFromWhereItsAcknowledgementsLeftIt() throws Exception {
    createWorkQueue("tasks");
    publish(connection, "tasks.x", 30);
    jsm.addOrUpdateConsumer("tasks", ConsumerConfiguration.builder().durable("taskers").build());
    // Another client of the same consumer already processed (and acked) the first 10.
    JetStreamSubscription other = connection.jetStream().subscribe(null, PullSubscribeOptions.bind("tasks", "taskers"));
    for (Message message : other.fetch(10, Duration.ofSeconds(5))) {
      message.ackSync(Duration.ofSeconds(5));
    }
    other.unsubscribe();

    PCollection<NatsMessage> messages = pipeline.apply(read("tasks").withConsumer("taskers").withMaxNumRecords(20));

    PAssert.that(sequences(messages)).containsInAnyOrder(LongStream.rangeClosed(11, 30).boxed().collect(Collectors.toList()));
    pipeline.run().waitUntilFinish();
    assertThat(awaitStreamMessages("tasks", 0), equalTo(0L));
  }

  @Test
  public void messagesNotAckedWithinTheAckWaitAreRedeliveredMarkedAndCounted() throws Exception {
    createWorkQueue("retry");
    publish(connection, "retry.x", 10);
    jsm.addOrUpdateConsumer("retry", ConsumerConfiguration.builder().durable("retriers").ackWait(Duration.ofSeconds(1)).build());
    // A reader that takes 5 messages and dies without acknowledging them.
    JetStreamSubscription crashed = connection.jetStream().subscribe(null, PullSubscribeOptions.bind("retry", "retriers"));
    assertThat(crashed.fetch(5, Duration.ofSeconds(5)).size(), equalTo(5));
    crashed.unsubscribe();

    PCollection<NatsMessage> messages = pipeline.apply(read("retry").withConsumer("retriers").withMaxNumRecords(10));

    PAssert.that(sequences(messages)).containsInAnyOrder(LongStream.rangeClosed(1, 10).boxed().collect(Collectors.toList()));
    PCollection<Long> redelivered =
        messages.apply(Filter.by(NatsMessage::isRedelivered))
            .apply("Redelivered sequences", MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence));
    PAssert.that(redelivered).containsInAnyOrder(1L, 2L, 3L, 4L, 5L);
    PipelineResult result = pipeline.run();
    result.waitUntilFinish();
    assertThat(NatsIOCoreReadTest.counter(result, "messagesRedelivered"), equalTo(5L));
    assertThat(awaitStreamMessages("retry", 0), equalTo(0L));
  }

  @Test
  public void boundedReadAcknowledgesOnlyTheMessagesItOutput() throws Exception {
    createWorkQueue("partial");
    publish(connection, "partial.x", 50);

    PCollection<Long> count =
        pipeline.apply(read("partial").withConsumerConfiguration(ConsumerConfiguration.builder().durable("partials").build()).withMaxNumRecords(20))
            .apply(Count.globally());

    PAssert.thatSingleton(count).isEqualTo(20L);
    pipeline.run().waitUntilFinish();
    // Messages pulled ahead but never output were returned (nak), not acknowledged: 30 stay.
    assertThat(awaitStreamMessages("partial", 30), equalTo(30L));
  }

  @Test
  public void missingConsumerFailsWithAPointerToCreatingIt() throws Exception {
    createWorkQueue("nobody");
    pipeline.apply(read("nobody").withConsumer("ghost").withMaxNumRecords(1));

    PipelineExecutionException error = assertThrows(PipelineExecutionException.class, () -> pipeline.run().waitUntilFinish());
    assertThat(error.getCause().getMessage(), containsString("Durable consumer 'ghost' does not exist on stream 'nobody'"));
    assertThat(error.getCause().getMessage(), containsString("withConsumerConfiguration"));
  }

  @Test
  public void positionTrackedReadOfAWorkQueueStreamPointsToWithConsumer() throws Exception {
    createWorkQueue("queue");
    publish(connection, "queue.x", 3);
    pipeline.apply(read("queue").withStopAtEndOfStream());

    PipelineExecutionException error = assertThrows(PipelineExecutionException.class, () -> pipeline.run().waitUntilFinish());
    assertThat(error.getCause().getMessage(), containsString("withConsumer(\"name\")"));
  }

  @Test
  public void consumerConfigurationWithoutADurableNameIsRefused() {
    IllegalArgumentException error =
        assertThrows(IllegalArgumentException.class, () -> read("s").withConsumerConfiguration(ConsumerConfiguration.builder().build()));
    assertThat(error.getMessage(), containsString("durable"));
  }

  @Test
  public void flinkBatchModeIsRefusedBecauseItCannotFinalizeBundles() {
    String problem = ReadFromDurableConsumerDoFn.finalizationProblem("org.apache.beam.runners.flink.FlinkRunner", false, 10_000L, true);
    assertThat(problem, containsString("--streaming=true"));
  }

  @Test
  public void flinkWithoutCheckpointingIsRefused() {
    String problem = ReadFromDurableConsumerDoFn.finalizationProblem("org.apache.beam.runners.flink.FlinkRunner", true, -1L, false);
    assertThat(problem, containsString("--checkpointingInterval"));
  }

  @Test
  public void flinkStreamingWithCheckpointingAndTheDirectRunnerAreAccepted() {
    assertThat(ReadFromDurableConsumerDoFn.finalizationProblem("org.apache.beam.runners.flink.FlinkRunner", true, 10_000L, false), nullValue());
    assertThat(ReadFromDurableConsumerDoFn.finalizationProblem("org.apache.beam.runners.direct.DirectRunner", false, null, true), nullValue());
  }

  @Test
  public void deliveredCountSurvivesTheCoderAndZeroEncodesAsBeforeTheField() throws Exception {
    NatsMessage redelivered = NatsMessage.of("a.b", new byte[] {1, 2}, java.util.Map.of(), "s", 7L, Instant.ofEpochMilli(5), 3L);
    NatsMessage plain = NatsMessage.of("a.b", new byte[] {1, 2}, java.util.Map.of(), "s", 7L, Instant.ofEpochMilli(5));
    NatsMessageCoder coder = NatsMessageCoder.of();

    assertThat(CoderUtils.decodeFromByteArray(coder, CoderUtils.encodeToByteArray(coder, redelivered)), equalTo(redelivered));
    // Presence byte 3 (stream, timestamp), no delivered-count bit, no extra bytes: the pre-existing encoding.
    byte[] plainBytes = CoderUtils.encodeToByteArray(coder, plain);
    assertThat(plainBytes[0], equalTo((byte) 3));
    assertThat(plainBytes.length, equalTo(1 + (4 + 3) + (4 + 2) + 8 + (4 + 1) + 8 + 4));
  }
}
