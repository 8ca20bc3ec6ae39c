package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.Combine;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.splittabledofn.RestrictionTracker;
import org.apache.beam.sdk.transforms.splittabledofn.SplitResult;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.windowing.FixedWindows;
import org.apache.beam.sdk.transforms.windowing.Window;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Duration;
import org.junit.After;
import org.junit.Test;

/** Unbounded (live) JetStream reads on the Direct runner: idle watermarks and server crashes. */
public class NatsIOUnboundedReadTest {
  private NatsTestServer server;
  private PipelineResult running;

  @After
  public void stop() throws Exception {
    if (running != null) {
      running.cancel();
    }
    if (server != null) {
      server.close();
    }
  }

  private static Pipeline nonBlockingPipeline() {
    DirectOptions options = PipelineOptionsFactory.create().as(DirectOptions.class);
    options.setBlockOnRun(false);
    return Pipeline.create(options);
  }

  @Test
  public void eventTimeWindowsFireWhileTheStreamIsIdle() throws Exception {
    server = NatsTestServer.jetStream().start();
    String id = "idle-" + UUID.randomUUID();
    try (Connection connection = server.connect()) {
      createStream(connection, "live", "live.>");
      Pipeline pipeline = nonBlockingPipeline();
      pipeline
          .apply(NatsIO.read().withServers(server.url()).withStream("live").withIdleWatermarkDelay(Duration.millis(500)))
          .apply(Window.into(FixedWindows.of(Duration.standardSeconds(1))))
          .apply(Combine.globally(Count.<NatsMessage>combineFn()).withoutDefaults())
          .apply(CollectingSink.into(id));
      running = pipeline.run();

      publish(connection, "live.a", 200);
      // Nothing more is published: only the idle watermark can close the last window.
      List<Long> windowCounts = CollectingSink.await(id, counts -> sum(counts) >= 200, 60_000);
      assertThat(sum(windowCounts), equalTo(200L));
    }
  }

  @Test
  public void serverKilledAndRestartedMidReadLosesAndDuplicatesNothing() throws Exception {
    server = NatsTestServer.jetStream().start();
    String id = "crash-" + UUID.randomUUID();
    try (Connection connection = server.connect()) {
      createStream(connection, "crashy", "crashy.>");
    }
    Pipeline pipeline = nonBlockingPipeline();
    pipeline
        .apply(NatsIO.read().withServers(server.url()).withStream("crashy"))
        .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
        .apply(CollectingSink.into(id));
    running = pipeline.run();

    try (Connection connection = server.connect()) {
      publish(connection, "crashy.x", 300);
    }
    CollectingSink.<Long>await(id, seen -> seen.size() >= 300, 60_000);

    server.kill();
    Thread.sleep(1_500);
    server.restart();
    try (Connection connection = server.connect()) {
      publish(connection, "crashy.x", 300);
    }

    CollectingSink.<Long>await(id, s -> s.size() >= 600, 90_000);
    // One more message, read after the 600 in sequence order: by the time it arrives, any repeat of
    // an earlier one from the restart would have arrived too.
    try (Connection connection = server.connect()) {
      publish(connection, "crashy.x", 1);
    }
    List<Long> seen = CollectingSink.await(id, s -> s.contains(601L), 90_000);
    Set<Long> distinct = new TreeSet<>(seen);
    assertThat("duplicates in " + seen.size() + " messages", seen.size(), equalTo(distinct.size()));
    assertThat(distinct, equalTo(LongStream.rangeClosed(1, 601).boxed().collect(Collectors.toCollection(TreeSet::new))));
  }

  @Test
  public void splitsAndSizeEstimatesDuringAnOutageDoNotFailTheRead() throws Exception {
    server = NatsTestServer.jetStream().start();
    try (Connection connection = server.connect()) {
      createStream(connection, "outage", "outage.>");
      publish(connection, "outage.x", 10);
    }
    long storedBytes;
    try (Connection connection = server.connect()) {
      storedBytes = connection.jetStreamManagement().getStreamInfo("outage").getStreamState().getByteCount();
    }
    ReadFromJetStreamDoFn fn =
        ReadFromJetStreamDoFn.create(NatsIO.read().withServers(server.url()).withStream("outage").toReadSourceDescriptors());
    NatsSourceDescriptor descriptor = NatsSourceDescriptor.of("outage");
    try {
      LimitedOffsetRange live = fn.initialRestriction(descriptor);
      server.kill(); // As during a leader election: the runner still asks for splits and sizes.

      RestrictionTracker<LimitedOffsetRange, Long> tracker = fn.newTracker(descriptor, live);
      assertThat(tracker.tryClaim(1L), equalTo(true));
      SplitResult<LimitedOffsetRange> split = tracker.trySplit(0.5);
      assertThat(split != null, equalTo(true));
      // From the stream's state as the restriction found it: its 10 messages' stored bytes.
      assertThat(fn.getSize(descriptor, live), equalTo((double) storedBytes));
    } finally {
      fn.teardown();
    }
  }

  private static long sum(List<Long> counts) {
    return counts.stream().mapToLong(Long::longValue).sum();
  }
}
