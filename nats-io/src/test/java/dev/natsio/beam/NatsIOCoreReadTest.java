package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.is;
import static org.hamcrest.Matchers.lessThan;
import static org.hamcrest.Matchers.nullValue;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.CoreMarkers;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.impl.Headers;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.After;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;

/** Core subject reads ({@code withSubject}) on the Direct runner against a real nats-server. */
public class NatsIOCoreReadTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.builder().withoutJetStream().build();
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  private static Connection publisher;
  private PipelineResult running;

  @BeforeClass
  public static void connect() {
    publisher = SERVER.connect();
  }

  @AfterClass
  public static void disconnect() throws InterruptedException {
    publisher.close();
  }

  @After
  public void cancel() throws Exception {
    if (running != null) {
      running.cancel();
    }
  }

  private static NatsIO.Read read(String subject) {
    return NatsIO.read().withServers(SERVER.url()).withSubject(subject);
  }

  private static Pipeline nonBlockingPipeline() {
    DirectOptions options = PipelineOptionsFactory.create().as(DirectOptions.class);
    options.setBlockOnRun(false);
    return Pipeline.create(options);
  }

  /** Core messages sent before a subscription exists are lost by design: wait until the reads have subscribed. */
  private static void awaitSubscriptions(long openedBefore, int count) throws InterruptedException {
    long deadline = System.currentTimeMillis() + 60_000;
    while (CoreSubscriptions.OPENED.get() - openedBefore < count) {
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("the reads did not subscribe within 60 s");
      }
      Thread.sleep(50);
    }
  }

  /** Publishes payloads {@code p0..p<count-1>} to {@code subject} and waits until the server has them. */
  private static void publishCore(String subject, int count) throws Exception {
    for (int i = 0; i < count; i++) {
      publisher.publish(subject, ("p" + i).getBytes(StandardCharsets.UTF_8));
    }
    publisher.flush(Duration.ofSeconds(10));
  }

  private static PCollection<String> payloads(PCollection<NatsMessage> messages) {
    return messages.apply(MapElements.into(TypeDescriptors.strings()).via(NatsMessage::getPayloadAsString));
  }

  private static Map<String, Long> counts(List<String> values) {
    return values.stream().collect(Collectors.groupingBy(Function.identity(), TreeMap::new, Collectors.counting()));
  }

  private static Map<String, Long> eachOnce(int count) {
    return IntStream.range(0, count).mapToObj(i -> "p" + i).collect(Collectors.toMap(p -> p, p -> 1L, (a, b) -> a, TreeMap::new));
  }

  @Test
  public void queueGroupMembersTogetherGetEveryMessageExactlyOnce() throws Exception {
    String a = "group-a-" + UUID.randomUUID();
    String b = "group-b-" + UUID.randomUUID();
    Pipeline p = nonBlockingPipeline();
    payloads(p.apply("Member A", read("sensors.>").withQueueGroup("ingest"))).apply("Collect A", CollectingSink.into(a));
    payloads(p.apply("Member B", read("sensors.>").withQueueGroup("ingest"))).apply("Collect B", CollectingSink.into(b));
    long openedBefore = CoreSubscriptions.OPENED.get();
    running = p.run();
    awaitSubscriptions(openedBefore, 2);

    publishCore("sensors.t1", 2_000);

    CoreMarkers.awaitEveryQueueMemberOutputAMarker(SERVER, publisher, "sensors.t1", "sensors.>", "ingest", 2_000, () -> {
      List<String> both = new ArrayList<>(CollectingSink.<String>collected(a));
      both.addAll(CollectingSink.collected(b));
      return both;
    });
    List<String> fromA = CoreMarkers.withoutMarkers(CollectingSink.collected(a));
    List<String> fromB = CoreMarkers.withoutMarkers(CollectingSink.collected(b));
    List<String> union = new ArrayList<>(fromA);
    union.addAll(fromB);
    assertThat(counts(union), equalTo(eachOnce(2_000)));
    // The server spreads a group's messages over its members: both took part.
    assertThat(fromA.size(), greaterThan(0));
    assertThat(fromB.size(), greaterThan(0));
  }

  @Test
  public void oneReadWithTwoReadersSpreadsTheGroupsMessagesOverBothAndDeliversEachOnce() throws Exception {
    String id = "readers-" + UUID.randomUUID();
    Pipeline p = nonBlockingPipeline();
    payloads(p.apply(read("meters.>").withQueueGroup("meters").withNumReaders(2))).apply(CollectingSink.into(id));
    long openedBefore = CoreSubscriptions.OPENED.get();
    running = p.run();
    awaitSubscriptions(openedBefore, 2);

    publishCore("meters.m1", 2_000);

    CollectingSink.<String>await(id, seen -> seen.size() >= 2_000, 60_000);
    // The server's own count per subscription: two members of the group, both delivered to.
    List<Long> deliveries = SERVER.queueSubscriberDeliveries("meters.>", "meters");
    assertThat(deliveries.size(), equalTo(2));
    assertThat(deliveries.get(0) + deliveries.get(1), equalTo(2_000L));
    assertThat(Math.min(deliveries.get(0), deliveries.get(1)), greaterThan(0L));
    CoreMarkers.awaitEveryQueueMemberOutputAMarker(SERVER, publisher, "meters.m1", "meters.>", "meters", 2_000, () -> CollectingSink.collected(id));
    assertThat(counts(CoreMarkers.withoutMarkers(CollectingSink.collected(id))), equalTo(eachOnce(2_000)));
  }

  @Test
  public void readsWithoutAQueueGroupEachGetEveryMessage() throws Exception {
    String a = "plain-a-" + UUID.randomUUID();
    String b = "plain-b-" + UUID.randomUUID();
    Pipeline p = nonBlockingPipeline();
    payloads(p.apply("Reader A", read("plain.>"))).apply("Collect A", CollectingSink.into(a));
    payloads(p.apply("Reader B", read("plain.>"))).apply("Collect B", CollectingSink.into(b));
    long openedBefore = CoreSubscriptions.OPENED.get();
    running = p.run();
    awaitSubscriptions(openedBefore, 2);

    publishCore("plain.x", 1_000);

    CoreMarkers.awaitEveryReaderOutputAMarker(publisher, "plain.x", () -> CollectingSink.collected(a), () -> CollectingSink.collected(b));
    assertThat(counts(CoreMarkers.withoutMarkers(CollectingSink.collected(a))), equalTo(eachOnce(1_000)));
    assertThat(counts(CoreMarkers.withoutMarkers(CollectingSink.collected(b))), equalTo(eachOnce(1_000)));
  }

  @Test
  public void messagesBeyondAFullBufferAreCountedAsDroppedNotLostSilently() throws Exception {
    String id = "overflow-" + UUID.randomUUID();
    int published = 20_000;
    // A 10-message buffer cannot hold a burst published far faster than the Direct runner reads.
    payloads(pipeline.apply(read("burst").withMaxBufferedMessages(10).withMaxReadTime(org.joda.time.Duration.standardSeconds(8))))
        .apply(CollectingSink.into(id));
    long openedBefore = CoreSubscriptions.OPENED.get();
    Thread burst =
        new Thread(() -> {
          try {
            awaitSubscriptions(openedBefore, 1);
            publishCore("burst", published);
          } catch (Exception e) {
            throw new RuntimeException(e);
          }
        });
    burst.start();
    PipelineResult result = pipeline.run();
    result.waitUntilFinish();
    burst.join();

    long delivered = CollectingSink.collected(id).size();
    long dropped = counter(result, "coreMessagesDropped");
    assertThat(dropped, greaterThan(0L));
    assertThat("every published message was either output or counted as dropped", delivered + dropped, equalTo((long) published));
  }

  @Test
  public void maxNumRecordsMakesACoreReadBoundedAtThatCount() throws Exception {
    PCollection<Long> count = pipeline.apply(read("ticks").withMaxNumRecords(100)).apply(Count.globally());
    PAssert.thatSingleton(count).isEqualTo(100L);
    AtomicBoolean done = new AtomicBoolean();
    Thread ticker = publishUntil("ticks", done);
    try {
      pipeline.run().waitUntilFinish();
    } finally {
      done.set(true);
      ticker.join();
    }
  }

  @Test
  public void maxReadTimeEndsACoreReadThatReceivesNothing() {
    long start = System.currentTimeMillis();
    PCollection<Long> count = pipeline.apply(read("silence").withMaxReadTime(org.joda.time.Duration.standardSeconds(2))).apply(Count.globally());
    PAssert.thatSingleton(count).isEqualTo(0L);
    pipeline.run().waitUntilFinish();
    assertThat(System.currentTimeMillis() - start, lessThan(30_000L));
  }

  @Test
  public void coreMessagesCarrySubjectPayloadHeadersAndReceiveTimeButNoStreamOrSequence() throws Exception {
    PCollection<NatsMessage> messages = pipeline.apply(read("fields.>").withMaxNumRecords(1));
    PAssert.thatSingleton(messages).satisfies(message -> {
      assertThat(message.getSubject(), equalTo("fields.one"));
      assertThat(message.getPayloadAsString(), equalTo("hello"));
      assertThat(message.getHeaders().get("h"), equalTo(List.of("v")));
      assertThat(message.getStream(), nullValue());
      assertThat(message.getSequence(), equalTo(0L));
      assertThat(Math.abs(message.getTimestamp().getMillis() - System.currentTimeMillis()) < 120_000, is(true));
      return null;
    });
    long openedBefore = CoreSubscriptions.OPENED.get();
    Thread sender =
        new Thread(() -> {
          try {
            awaitSubscriptions(openedBefore, 1);
            publisher.publish("fields.one", new Headers().add("h", "v"), "hello".getBytes(StandardCharsets.UTF_8));
            publisher.flush(Duration.ofSeconds(5));
          } catch (Exception e) {
            throw new RuntimeException(e);
          }
        });
    sender.start();
    pipeline.run().waitUntilFinish();
    sender.join();
  }

  @Test
  public void subjectAndStreamTogetherAreRefused() {
    IllegalArgumentException error =
        assertThrows(IllegalArgumentException.class, () -> Pipeline.create().apply(read("a.b").withStream("s")));
    assertThat(error.getMessage(), containsString("both withStream and withSubject"));
  }

  @Test
  public void queueGroupWithoutSubjectIsRefused() {
    IllegalArgumentException error =
        assertThrows(
            IllegalArgumentException.class,
            () -> Pipeline.create().apply(NatsIO.read().withServers(SERVER.url()).withStream("s").withQueueGroup("g")));
    assertThat(error.getMessage(), containsString("withSubject"));
  }

  /** Publishes to {@code subject} every millisecond or so until {@code done}. */
  private static Thread publishUntil(String subject, AtomicBoolean done) {
    Thread thread =
        new Thread(() -> {
          int i = 0;
          while (!done.get()) {
            publisher.publish(subject, ("t" + i++).getBytes(StandardCharsets.UTF_8));
            try {
              Thread.sleep(1);
            } catch (InterruptedException e) {
              return;
            }
          }
        });
    thread.start();
    return thread;
  }

  static long counter(PipelineResult result, String name) {
    long total = 0;
    for (MetricResult<Long> counter :
        result.metrics().queryMetrics(MetricsFilter.builder().addNameFilter(MetricNameFilter.named("NatsIO", name)).build()).getCounters()) {
      total += counter.getAttempted();
    }
    return total;
  }
}
