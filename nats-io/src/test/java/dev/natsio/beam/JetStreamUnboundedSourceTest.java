package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;
import static org.hamcrest.Matchers.instanceOf;
import static org.hamcrest.Matchers.is;
import static org.hamcrest.Matchers.lessThanOrEqualTo;
import static org.hamcrest.Matchers.nullValue;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.fail;

import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.JetStreamTestData;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.JetStreamManagement;
import io.nats.client.PurgeOptions;
import io.nats.client.api.RetentionPolicy;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import io.nats.client.impl.Headers;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.io.Read;
import org.apache.beam.sdk.io.UnboundedSource.UnboundedReader;
import org.apache.beam.sdk.options.ExperimentalOptions;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.runners.TransformHierarchy;
import org.apache.beam.sdk.testing.CoderProperties;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.util.CoderUtils;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Duration;
import org.joda.time.Instant;
import org.junit.After;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * {@link JetStreamUnboundedSource}, its reader and its checkpoint mark against a real nats-server,
 * mostly by driving the reader as a runner would (start, advance, getCurrent, getCheckpointMark,
 * close), which is deterministic; plus how {@link NatsIO.Read} chooses the source, and one Direct
 * pipeline that reads through it.
 */
public class JetStreamUnboundedSourceTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  private static final long READ_TIMEOUT_MILLIS = 20_000;
  private static final PipelineOptions OPTIONS = PipelineOptionsFactory.create();

  private final Connection connection = SERVER.sharedConnection();
  private PipelineResult running;

  @After
  public void cancelPipeline() throws IOException {
    if (running != null) {
      running.cancel();
    }
  }

  // ---- Reading ---------------------------------------------------------------------------------

  @Test
  public void readerReadsEveryMessageOnceInSequenceOrderWithItsFields() throws Exception {
    createStream(connection, "fields", "fields.>");
    publish(
        connection,
        i -> i % 2 == 0 ? "fields.even" : "fields.odd",
        50,
        JetStreamTestData::payload,
        i -> i % 5 == 0 ? new Headers().add("index", String.valueOf(i)).add("tag", "a", "b") : null);

    try (UnboundedReader<NatsMessage> reader = source(read("fields")).createReader(OPTIONS, null)) {
      List<NatsMessage> messages = new ArrayList<>();
      List<Instant> timestamps = new ArrayList<>();
      boolean available = reader.start();
      while (messages.size() < 50) {
        if (available) {
          messages.add(reader.getCurrent());
          timestamps.add(reader.getCurrentTimestamp());
        }
        if (messages.size() < 50) {
          available = advanceWithin(reader, READ_TIMEOUT_MILLIS);
        }
      }
      assertNothingMoreWithin(reader, 300);

      JetStreamManagement jsm = connection.jetStreamManagement();
      for (int i = 0; i < 50; i++) {
        NatsMessage message = messages.get(i);
        Instant published = JetStreamReadCore.toInstant(jsm.getMessage("fields", i + 1).getTime());
        assertThat(message.getSequence(), equalTo(i + 1L));
        assertThat(message.getStream(), equalTo("fields"));
        assertThat(message.getSubject(), equalTo(i % 2 == 0 ? "fields.even" : "fields.odd"));
        assertThat(message.getPayloadAsString(), equalTo("m" + i));
        assertThat(
            message.getHeaders(),
            equalTo(i % 5 == 0 ? Map.of("index", List.of(String.valueOf(i)), "tag", List.of("a", "b")) : Map.of()));
        assertThat(message.getTimestamp(), equalTo(published));
        assertThat(timestamps.get(i), equalTo(published));
      }
    }
  }

  @Test
  public void checkpointMarkThroughItsCoderResumesANewReaderAtTheNextMessage() throws Exception {
    createStream(connection, "resume", "resume.>");
    publish(connection, "resume.x", 100);
    JetStreamUnboundedSource source = source(read("resume"));

    List<Long> sequences = new ArrayList<>();
    JetStreamCheckpointMark restored;
    try (UnboundedReader<NatsMessage> first = source.createReader(OPTIONS, null)) {
      sequences.addAll(sequencesOf(startAndRead(first, 30)));
      JetStreamCheckpointMark mark = (JetStreamCheckpointMark) first.getCheckpointMark();
      restored = CoderUtils.decodeFromByteArray(
          source.getCheckpointMarkCoder(), CoderUtils.encodeToByteArray(source.getCheckpointMarkCoder(), mark));
    }
    assertThat(restored.getNextSequence(), equalTo(31L));

    try (UnboundedReader<NatsMessage> second = source.createReader(OPTIONS, restored)) {
      sequences.addAll(sequencesOf(startAndRead(second, 70)));
      assertNothingMoreWithin(second, 300);
    }
    assertThat(sequences, equalTo(range(1, 100)));
  }

  @Test
  public void checkpointMarkCarriesTheWatermarkReachedAndTheResumedReaderStartsFromIt() throws Exception {
    createStream(connection, "markwatermark", "markwatermark.>");
    publish(connection, "markwatermark.x", 40);
    JetStreamUnboundedSource source = source(read("markwatermark"));

    JetStreamCheckpointMark mark;
    try (UnboundedReader<NatsMessage> first = source.createReader(OPTIONS, null)) {
      startAndRead(first, 20);
      mark = CoderUtils.clone(source.getCheckpointMarkCoder(), (JetStreamCheckpointMark) first.getCheckpointMark());
    }
    assertThat(mark.getWatermark(), equalTo(publishTime("markwatermark", 20)));

    try (UnboundedReader<NatsMessage> second = source.createReader(OPTIONS, mark)) {
      assertThat(second.getWatermark(), equalTo(mark.getWatermark()));
      startAndRead(second, 20);
      assertThat(second.getWatermark(), equalTo(publishTime("markwatermark", 40)));
    }
  }

  @Test
  public void resumedWatermarkDoesNotFallBackToOlderPublishTimes() throws Exception {
    createStream(connection, "nofallback", "nofallback.>");
    publish(connection, "nofallback.x", 10);
    // As after an idle advance: the mark's watermark is later than the messages still to read.
    Instant later = Instant.now().plus(Duration.standardHours(1));
    JetStreamCheckpointMark mark = new JetStreamCheckpointMark(6L, later);

    try (UnboundedReader<NatsMessage> reader = source(read("nofallback")).createReader(OPTIONS, mark)) {
      for (int i = 0; i < 5; i++) {
        assertThat(i == 0 ? startWithin(reader, READ_TIMEOUT_MILLIS) : advanceWithin(reader, READ_TIMEOUT_MILLIS), is(true));
        assertThat(reader.getCurrent().getSequence(), equalTo(6L + i));
        assertThat(reader.getWatermark(), equalTo(later));
      }
    }
  }

  @Test
  public void markTakenBeforeTheServerAnsweredResolvesTheConfiguredStartAgain() throws Exception {
    createStream(connection, "unresolved", "unresolved.>");
    publish(connection, "unresolved.x", 20);
    JetStreamUnboundedSource source = source(read("unresolved").withStartSequence(12));

    JetStreamCheckpointMark mark;
    try (UnboundedReader<NatsMessage> unstarted = source.createReader(OPTIONS, null)) {
      mark = CoderUtils.clone(source.getCheckpointMarkCoder(), (JetStreamCheckpointMark) unstarted.getCheckpointMark());
    }
    assertThat(mark.getNextSequence(), nullValue());
    assertThat(mark.getWatermark(), equalTo(BoundedWindow.TIMESTAMP_MIN_VALUE));

    try (UnboundedReader<NatsMessage> reader = source.createReader(OPTIONS, mark)) {
      assertThat(sequencesOf(startAndRead(reader, 9)), equalTo(range(12, 20)));
    }
  }

  // ---- Start position --------------------------------------------------------------------------

  @Test
  public void startSequenceStartsWhereTheSplittableReadWould() throws Exception {
    createStream(connection, "startseq", "startseq.>");
    publish(connection, "startseq.x", 60);
    NatsIO.Read read = read("startseq").withStartSequence(41);

    try (UnboundedReader<NatsMessage> reader = source(read).createReader(OPTIONS, null)) {
      assertThat(sequencesOf(startAndRead(reader, 20)), equalTo(range(41, 60)));
    }
    assertThat(splittableStart(read), equalTo(41L));
  }

  @Test
  public void startSequenceBeforeThePurgedHeadStartsAtTheFirstStoredMessage() throws Exception {
    createStream(connection, "purgedhead", "purgedhead.>");
    publish(connection, "purgedhead.x", 30);
    connection.jetStreamManagement().purgeStream("purgedhead", PurgeOptions.builder().sequence(11).build());
    NatsIO.Read read = read("purgedhead").withStartSequence(3);

    try (UnboundedReader<NatsMessage> reader = source(read).createReader(OPTIONS, null)) {
      assertThat(sequencesOf(startAndRead(reader, 20)), equalTo(range(11, 30)));
    }
    assertThat(splittableStart(read), equalTo(11L));
  }

  @Test
  public void startTimeStartsAtTheFirstMessageStoredAtOrAfterItAsTheSplittableReadWould() throws Exception {
    createStream(connection, "starttime", "starttime.>");
    publish(connection, "starttime.x", 30);
    Thread.sleep(50);
    Instant start = Instant.now();
    Thread.sleep(50);
    publish(connection, "starttime.x", 20);
    NatsIO.Read read = read("starttime").withStartTime(start);

    try (UnboundedReader<NatsMessage> reader = source(read).createReader(OPTIONS, null)) {
      assertThat(sequencesOf(startAndRead(reader, 20)), equalTo(range(31, 50)));
    }
    assertThat(splittableStart(read), equalTo(31L));
  }

  // ---- Watermark -------------------------------------------------------------------------------

  @Test
  public void watermarkFollowsThePublishTimeOfEachMessageRead() throws Exception {
    createStream(connection, "wmpublish", "wmpublish.>");
    for (int i = 0; i < 5; i++) {
      publish(connection, "wmpublish.x", 1);
      Thread.sleep(5); // Distinct publish times.
    }

    try (UnboundedReader<NatsMessage> reader = source(read("wmpublish")).createReader(OPTIONS, null)) {
      assertThat(reader.getWatermark(), equalTo(BoundedWindow.TIMESTAMP_MIN_VALUE));
      for (long sequence = 1; sequence <= 5; sequence++) {
        assertThat(sequence == 1 ? startWithin(reader, READ_TIMEOUT_MILLIS) : advanceWithin(reader, READ_TIMEOUT_MILLIS), is(true));
        assertThat(reader.getCurrent().getSequence(), equalTo(sequence));
        assertThat(reader.getWatermark(), equalTo(publishTime("wmpublish", sequence)));
      }
    }
  }

  @Test
  public void caughtUpQuietStreamAdvancesTheWatermarkToNowLessTheIdleDelay() throws Exception {
    createStream(connection, "wmidle", "wmidle.>");
    publish(connection, "wmidle.x", 5);
    Duration idleDelay = Duration.millis(500);
    Instant lastPublished = publishTime("wmidle", 5);

    try (UnboundedReader<NatsMessage> reader =
        source(read("wmidle").withIdleWatermarkDelay(idleDelay)).createReader(OPTIONS, null)) {
      startAndRead(reader, 5);
      // The look-ahead that finds the read caught up asks in the background, from an advance()
      // after the last message: no earlier than this, perhaps calls before the one that sees it.
      long caughtUp = System.currentTimeMillis();
      long deadline = caughtUp + 10_000;
      while (true) {
        assertThat(reader.advance(), is(false));
        long after = System.currentTimeMillis();
        Instant watermark = reader.getWatermark();
        if (watermark.isAfter(lastPublished)) {
          assertThat(watermark.getMillis(), greaterThanOrEqualTo(caughtUp - idleDelay.getMillis()));
          assertThat(watermark.getMillis(), lessThanOrEqualTo(after - idleDelay.getMillis()));
          break;
        }
        assertThat(watermark, equalTo(lastPublished));
        if (System.currentTimeMillis() > deadline) {
          fail("The watermark stayed at the last publish time " + lastPublished + " on a caught-up stream");
        }
      }
    }
  }

  @Test
  public void timestampFnStampsEachMessageAndTheWatermarkTrailsTheLargestByMaxDelay() throws Exception {
    createStream(connection, "wmfn", "wmfn.>");
    Instant base = Instant.parse("2020-01-01T00:00:00Z");
    long[] offsetsSeconds = {5, 20, 12};
    publishEventTimes("wmfn", base, offsetsSeconds);
    NatsIO.Read read = read("wmfn").withTimestampFn(new PayloadMillis(), Duration.standardSeconds(10));

    try (UnboundedReader<NatsMessage> reader = source(read).createReader(OPTIONS, null)) {
      Instant[] expectedWatermarks = {
        base.minus(Duration.standardSeconds(5)), base.plus(Duration.standardSeconds(10)), base.plus(Duration.standardSeconds(10))
      };
      for (int i = 0; i < 3; i++) {
        assertThat(i == 0 ? startWithin(reader, READ_TIMEOUT_MILLIS) : advanceWithin(reader, READ_TIMEOUT_MILLIS), is(true));
        assertThat(reader.getCurrentTimestamp(), equalTo(base.plus(Duration.standardSeconds(offsetsSeconds[i]))));
        assertThat(reader.getWatermark(), equalTo(expectedWatermarks[i]));
      }
    }
  }

  @Test
  public void timestampFnWatermarkAdvancesToNowLessTheDelayOnceCaughtUp() throws Exception {
    createStream(connection, "wmfnidle", "wmfnidle.>");
    Instant base = Instant.parse("2020-01-01T00:00:00Z");
    publishEventTimes("wmfnidle", base, new long[] {30});
    Duration maxDelay = Duration.standardSeconds(10);
    NatsIO.Read read = read("wmfnidle").withTimestampFn(new PayloadMillis(), maxDelay);

    try (UnboundedReader<NatsMessage> reader = source(read).createReader(OPTIONS, null)) {
      startAndRead(reader, 1);
      assertThat(reader.getWatermark(), equalTo(base.plus(Duration.standardSeconds(20))));
      Instant caughtUp = Instant.now(); // Nothing is published after this: the read is caught up.
      long deadline = System.currentTimeMillis() + READ_TIMEOUT_MILLIS;
      while (reader.getWatermark().isBefore(caughtUp.minus(maxDelay)) && System.currentTimeMillis() < deadline) {
        assertThat(reader.advance(), is(false));
      }
      // As KafkaIO's limited-delay policy: a quiet stream's event-time windows close.
      assertThat(reader.getWatermark().getMillis(), greaterThanOrEqualTo(caughtUp.minus(maxDelay).getMillis()));
      assertThat(reader.getWatermark().getMillis(), lessThanOrEqualTo(Instant.now().minus(maxDelay).getMillis()));
    }
  }

  @Test
  public void processingTimeWatermarkIsWallTime() throws Exception {
    createStream(connection, "wmwall", "wmwall.>");
    publish(connection, "wmwall.x", 3);

    try (UnboundedReader<NatsMessage> reader = source(read("wmwall").withProcessingTime()).createReader(OPTIONS, null)) {
      long before = System.currentTimeMillis();
      startAndRead(reader, 3);
      Instant stamped = reader.getCurrentTimestamp();
      Instant watermark = reader.getWatermark();
      long after = System.currentTimeMillis();
      assertThat(stamped.getMillis(), greaterThanOrEqualTo(before));
      assertThat(watermark.getMillis(), greaterThanOrEqualTo(stamped.getMillis()));
      assertThat(watermark.getMillis(), lessThanOrEqualTo(after));
    }
  }

  // ---- Refusals --------------------------------------------------------------------------------

  @Test
  public void missingStreamFailsStartWithAnErrorNamingItAndSayingToCreateIt() throws Exception {
    try (UnboundedReader<NatsMessage> reader = source(read("no_such_stream")).createReader(OPTIONS, null)) {
      NatsIOException error = assertThrows(NatsIOException.class, reader::start);
      assertThat(error.getMessage(), containsString("stream 'no_such_stream' does not exist on " + SERVER.url()));
      assertThat(error.getMessage(), containsString("Create it first"));
    }
  }

  @Test
  public void workQueueStreamIsRefusedWithAPointerToWithConsumer() throws Exception {
    createStream(connection,
        StreamConfiguration.builder().name("queue").subjects("queue.>").retentionPolicy(RetentionPolicy.WorkQueue)
            .storageType(StorageType.File).build());
    publish(connection, "queue.x", 3);

    try (UnboundedReader<NatsMessage> reader = source(read("queue")).createReader(OPTIONS, null)) {
      NatsIOException error = assertThrows(NatsIOException.class, reader::start);
      assertThat(error.getMessage(), containsString("JetStream stream 'queue'"));
      assertThat(error.getMessage(), containsString("work-queue stream"));
      assertThat(error.getMessage(), containsString("NatsIO.read().withStream(\"queue\").withConsumer(\"name\")"));
    }
    assertThat(connection.jetStreamManagement().getStreamInfo("queue").getStreamState().getMsgCount(), equalTo(3L));
  }

  // ---- Outage ----------------------------------------------------------------------------------

  @Test
  public void serverKilledAndRestartedMidReadIsWaitedOutAndEveryMessageIsReadOnce() throws Exception {
    try (NatsTestServer crashy = NatsTestServer.jetStream().start()) {
      try (Connection publisher = crashy.connect()) {
        createStream(publisher, "crashy", "crashy.>");
        publish(publisher, "crashy.x", 100);
      }
      // A small batch, so the kill finds most of the stream still on the server, not in the client.
      NatsIO.Read read = NatsIO.read().withServers(crashy.url()).withStream("crashy").withBatchSize(10);
      try (UnboundedReader<NatsMessage> reader = source(read).createReader(OPTIONS, null)) {
        List<Long> sequences = new ArrayList<>(sequencesOf(startAndRead(reader, 30)));

        crashy.kill();
        awaitDisconnected(read.toReadSourceDescriptors().getConnectionConfiguration());
        // While the server is away: messages already in the client may still come, then only
        // "nothing yet", never an exception. (That no call waits for a request the server does not
        // answer is JetStreamNoLeaderReadTest's, on a server that is connected but has no leader.)
        List<Boolean> outage = new ArrayList<>();
        long outageEnds = System.currentTimeMillis() + 4_000; // Past jnats's missed-heartbeat alarm (3 s).
        while (System.currentTimeMillis() < outageEnds) {
          boolean available = reader.advance();
          outage.add(available);
          if (available) {
            sequences.add(reader.getCurrent().getSequence());
          }
        }
        int firstNothing = outage.indexOf(false);
        assertThat("advance() never returned false while the server was down", firstNothing >= 0, is(true));
        assertThat(outage.subList(firstNothing, outage.size()).contains(true), is(false));

        crashy.restart();
        try (Connection publisher = crashy.connect()) {
          publish(publisher, "crashy.x", 100);
        }
        sequences.addAll(sequencesOf(readMore(reader, 200 - sequences.size(), 60_000)));
        assertNothingMoreWithin(reader, 300);
        assertThat(sequences, equalTo(range(1, 200)));
      }
    }
  }

  // ---- Checkpoint mark coder -------------------------------------------------------------------

  @Test
  public void checkpointMarkCoderRoundTripsMarksWithAndWithoutANextSequence() throws Exception {
    Coder<JetStreamCheckpointMark> coder = JetStreamCheckpointMark.Coder.of();
    List<JetStreamCheckpointMark> marks = List.of(
        new JetStreamCheckpointMark(null, BoundedWindow.TIMESTAMP_MIN_VALUE),
        new JetStreamCheckpointMark(null, Instant.parse("2024-05-01T12:00:00.123Z")),
        new JetStreamCheckpointMark(1L, BoundedWindow.TIMESTAMP_MIN_VALUE),
        new JetStreamCheckpointMark(31L, Instant.parse("2024-05-01T12:00:00.123Z")),
        new JetStreamCheckpointMark(Long.MAX_VALUE, BoundedWindow.TIMESTAMP_MAX_VALUE));
    for (JetStreamCheckpointMark mark : marks) {
      CoderProperties.coderDecodeEncodeEqual(coder, mark);
      CoderProperties.coderDeterministic(coder, mark, CoderUtils.clone(coder, mark));
    }
    CoderProperties.coderSerializable(coder);
    assertThat(CoderUtils.clone(coder, marks.get(1)).getNextSequence(), nullValue());
    assertThat(CoderUtils.clone(coder, marks.get(3)).getNextSequence(), equalTo(31L));
  }

  // ---- Expansion -------------------------------------------------------------------------------

  @Test
  public void deprecatedReadExperimentExpandsAnUnboundedStreamReadToTheSource() {
    Pipeline pipeline = Pipeline.create(optionsWithExperiment("use_deprecated_read"));
    pipeline.apply(read("orders"));

    List<PTransform<?, ?>> transforms = transformsOf(pipeline);
    List<Read.Unbounded<?>> reads = unboundedReadsIn(transforms);
    assertThat(reads.size(), equalTo(1));
    assertThat(reads.get(0).getSource(), instanceOf(JetStreamBatchSource.class));
    JetStreamUnboundedSource source = ((JetStreamBatchSource) reads.get(0).getSource()).messageSource();
    assertThat(source.getDescriptor(), equalTo(NatsSourceDescriptor.of("orders")));
    assertThat(source.getSpec().getConnectionConfiguration().getServers(), equalTo(SERVER.url()));
    assertThat(splittableReadsIn(transforms), equalTo(0));
  }

  @Test
  public void defaultDirectOptionsKeepTheSplittableRead() {
    Pipeline pipeline = Pipeline.create(PipelineOptionsFactory.create());
    pipeline.apply(read("orders"));

    List<PTransform<?, ?>> transforms = transformsOf(pipeline);
    assertThat(unboundedReadsIn(transforms), empty());
    assertThat(splittableReadsIn(transforms), equalTo(1));
  }

  @Test
  public void sdfReadExperimentsKeepTheSplittableRead() {
    for (String experiment : List.of("use_sdf_read", "beam_fn_api")) {
      Pipeline pipeline = Pipeline.create(optionsWithExperiment(experiment));
      pipeline.apply(read("orders"));

      List<PTransform<?, ?>> transforms = transformsOf(pipeline);
      assertThat(experiment, unboundedReadsIn(transforms), empty());
      assertThat(experiment, splittableReadsIn(transforms), equalTo(1));
    }
  }

  @Test
  public void boundedReadNeverUsesTheSourceEvenWithTheDeprecatedReadExperiment() {
    Pipeline pipeline = Pipeline.create(optionsWithExperiment("use_deprecated_read"));
    pipeline.apply("to end", read("orders").withStopAtEndOfStream());
    pipeline.apply("capped", read("orders").withMaxNumRecords(10));

    List<PTransform<?, ?>> transforms = transformsOf(pipeline);
    assertThat(unboundedReadsIn(transforms), empty());
    assertThat(splittableReadsIn(transforms), equalTo(2));
  }

  // ---- Pipeline --------------------------------------------------------------------------------

  @Test
  public void directPipelineWithDeprecatedReadReadsALiveStreamExactlyOnce() throws Exception {
    createStream(connection, "direct", "direct.>");
    String id = "source-" + UUID.randomUUID();
    DirectOptions options = optionsWithExperiment("use_deprecated_read").as(DirectOptions.class);
    options.setBlockOnRun(false);
    Pipeline pipeline = Pipeline.create(options);
    pipeline
        .apply(read("direct"))
        .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
        .apply(CollectingSink.into(id));
    assertThat(unboundedReadsIn(transformsOf(pipeline)).size(), equalTo(1));
    running = pipeline.run();

    publish(connection, "direct.x", 500);
    CollectingSink.<Long>await(id, seen -> seen.size() >= 500, 60_000);
    // One more message, read after the 500 in sequence order: a repeat of an earlier one (a reader
    // restored from an older checkpoint mark) would come before it.
    publish(connection, "direct.x", 1);
    List<Long> seen = CollectingSink.await(id, s -> s.contains(501L), 60_000);
    running.cancel();
    running = null;

    assertThat(seen.stream().sorted().collect(Collectors.toList()), equalTo(range(1, 501)));
  }

  @Test
  public void sourceReportsTheSameCountersAndLineageAsTheSplittableRead() throws Exception {
    createStream(connection, "metered_source", "metered_source.>");
    publish(connection, "metered_source.x", 1_000); // Payloads "m0".."m999": 10×2 + 90×3 + 900×4 = 3,890 bytes.
    String id = "source-metrics-" + UUID.randomUUID();
    DirectOptions options = optionsWithExperiment("use_deprecated_read").as(DirectOptions.class);
    options.setBlockOnRun(false);
    Pipeline pipeline = Pipeline.create(options);
    pipeline
        .apply(read("metered_source"))
        .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
        .apply(CollectingSink.into(id));
    running = pipeline.run();

    CollectingSink.<Long>await(id, seen -> seen.size() >= 1_000, 60_000);
    long deadline = System.currentTimeMillis() + 10_000;
    while (counter(running, "messagesRead/metered_source") < 1_000 && System.currentTimeMillis() < deadline) {
      Thread.sleep(100); // The reader reports every 100 messages and whenever the stream is quiet.
    }

    assertThat(counter(running, "messagesRead/metered_source"), equalTo(1_000L));
    assertThat(counter(running, "bytesRead/metered_source"), equalTo(3_890L));
    deadline = System.currentTimeMillis() + 10_000;
    while (backlogGauge(running, "backlogMessages/metered_source") != 0 && System.currentTimeMillis() < deadline) {
      Thread.sleep(100); // The gauge follows the stream's state, fetched about once a second.
    }
    assertThat(backlogGauge(running, "backlogMessages/metered_source"), equalTo(0L));
    assertThat(org.apache.beam.sdk.metrics.Lineage.query(running.metrics(), org.apache.beam.sdk.metrics.Lineage.Type.SOURCE).toString(),
        org.hamcrest.Matchers.containsString("metered_source"));
  }

  @Test
  public void newReaderWithWrongCredentialsFailsAtOnceNamingTheServerButNotThePassword() throws Exception {
    try (NatsTestServer secured = NatsTestServer.builder().withUserPassword("alice", "right-password").build().start()) {
      String url = secured.url().replace("nats://", "nats://alice:wrong-password@");
      UnboundedReader<NatsMessage> reader =
          source(NatsIO.read().withServers(url).withStream("any")).createReader(OPTIONS, null);
      try {
        NatsIOException error = assertThrows(NatsIOException.class, reader::start);
        assertThat(error.getMessage(), org.hamcrest.Matchers.containsString(secured.url()));
        assertThat(error.getMessage().toLowerCase(), org.hamcrest.Matchers.containsString("authentication"));
        assertThat(error.getMessage().contains("wrong-password"), equalTo(false));
      } finally {
        reader.close();
      }
    }
  }

  /** The gauge's latest value, or -1 when it was never set. */
  private static long backlogGauge(PipelineResult result, String name) {
    long value = -1;
    for (org.apache.beam.sdk.metrics.MetricResult<org.apache.beam.sdk.metrics.GaugeResult> gauge : result.metrics().queryMetrics(
        org.apache.beam.sdk.metrics.MetricsFilter.builder()
            .addNameFilter(org.apache.beam.sdk.metrics.MetricNameFilter.named("NatsIO", name)).build()).getGauges()) {
      value = gauge.getAttempted().getValue();
    }
    return value;
  }

  @Test
  public void rateLimitSpacesMessagesWithoutHoldingAdvanceLongerThanAPoll() throws Exception {
    createStream(connection, "paced", "paced.>");
    publish(connection, "paced.x", 6);
    UnboundedReader<NatsMessage> reader =
        source(read("paced").withMaxMessagesPerSecond(5)).createReader(OPTIONS, null);
    try {
      List<Long> sequences = new ArrayList<>();
      int nothingYetAfterAMessage = 0;
      long start = System.nanoTime();
      long deadline = System.currentTimeMillis() + READ_TIMEOUT_MILLIS;
      boolean started = false;
      while (sequences.size() < 6 && System.currentTimeMillis() < deadline) {
        boolean got = started ? reader.advance() : reader.start();
        started = true;
        if (got) {
          sequences.add(reader.getCurrent().getSequence());
        } else if (!sequences.isEmpty()) {
          nothingYetAfterAMessage++;
        }
      }
      long elapsedMillis = (System.nanoTime() - start) / 1_000_000;

      assertThat(sequences, equalTo(range(1, 6)));
      // Six messages at 5 a second: the first at once, then one every 200 ms.
      assertThat("took " + elapsedMillis + " ms", elapsedMillis >= 5 * 200 - 20, equalTo(true));
      // The messages were all in the client: the reader handed the task thread back ("nothing yet")
      // while waiting for their slots, rather than holding it until each one.
      assertThat(nothingYetAfterAMessage >= 5, equalTo(true));
    } finally {
      reader.close();
    }
  }

  private static long counter(PipelineResult result, String name) {
    org.apache.beam.sdk.metrics.MetricQueryResults metrics = result.metrics().queryMetrics(
        org.apache.beam.sdk.metrics.MetricsFilter.builder()
            .addNameFilter(org.apache.beam.sdk.metrics.MetricNameFilter.named("NatsIO", name)).build());
    long total = 0;
    for (org.apache.beam.sdk.metrics.MetricResult<Long> counter : metrics.getCounters()) {
      total += counter.getAttempted();
    }
    return total;
  }

  // ---- Helpers ---------------------------------------------------------------------------------

  private static NatsIO.Read read(String stream) {
    return NatsIO.read().withServers(SERVER.url()).withStream(stream);
  }

  private static JetStreamUnboundedSource source(NatsIO.Read read) {
    return new JetStreamUnboundedSource(read.toReadSourceDescriptors(), read.toDescriptor());
  }

  /** Where the splittable DoFn's initial restriction starts for the same read. */
  private static long splittableStart(NatsIO.Read read) {
    ReadFromJetStreamDoFn fn = ReadFromJetStreamDoFn.create(read.toReadSourceDescriptors());
    try {
      return fn.initialRestriction(read.toDescriptor()).getRange().getFrom();
    } finally {
      fn.teardown();
    }
  }

  static boolean startWithin(UnboundedReader<?> reader, long timeoutMillis) throws IOException {
    return reader.start() || advanceWithin(reader, timeoutMillis);
  }

  /** Calls advance() until it returns true; fails after {@code timeoutMillis}. Also JetStreamBatchSourceTest's. */
  static boolean advanceWithin(UnboundedReader<?> reader, long timeoutMillis) throws IOException {
    long deadline = System.currentTimeMillis() + timeoutMillis;
    while (!reader.advance()) {
      if (System.currentTimeMillis() > deadline) {
        fail("Nothing read within " + timeoutMillis + " ms");
      }
    }
    return true;
  }

  /** Calls start(), then advance() until {@code count} messages have been read. */
  private static List<NatsMessage> startAndRead(UnboundedReader<NatsMessage> reader, int count) throws IOException {
    List<NatsMessage> messages = new ArrayList<>();
    if (reader.start()) {
      messages.add(reader.getCurrent());
    }
    messages.addAll(readMore(reader, count - messages.size(), READ_TIMEOUT_MILLIS));
    return messages;
  }

  private static List<NatsMessage> readMore(UnboundedReader<NatsMessage> reader, int count, long timeoutMillis) throws IOException {
    List<NatsMessage> messages = new ArrayList<>();
    long deadline = System.currentTimeMillis() + timeoutMillis;
    while (messages.size() < count) {
      if (reader.advance()) {
        messages.add(reader.getCurrent());
      } else if (System.currentTimeMillis() > deadline) {
        fail("Read " + messages.size() + " of " + count + " messages within " + timeoutMillis + " ms");
      }
    }
    return messages;
  }

  private static void assertNothingMoreWithin(UnboundedReader<NatsMessage> reader, long millis) throws IOException {
    long end = System.currentTimeMillis() + millis;
    while (System.currentTimeMillis() < end) {
      if (reader.advance()) {
        fail("Unexpected message at sequence " + reader.getCurrent().getSequence());
      }
    }
  }

  /** Waits until the connection the reader shares for {@code configuration} has noticed the server is gone. */
  private static void awaitDisconnected(NatsIO.ConnectionConfiguration configuration) throws InterruptedException {
    try (NatsConnections.Lease lease = NatsConnections.acquire(configuration)) {
      long deadline = System.currentTimeMillis() + 10_000;
      while (lease.connection().getStatus() == Connection.Status.CONNECTED) {
        if (System.currentTimeMillis() > deadline) {
          fail("The client did not notice the server was killed");
        }
        Thread.sleep(10);
      }
    }
  }

  private static List<Long> sequencesOf(List<NatsMessage> messages) {
    return messages.stream().map(NatsMessage::getSequence).collect(Collectors.toList());
  }

  private static List<Long> range(long fromInclusive, long toInclusive) {
    return LongStream.rangeClosed(fromInclusive, toInclusive).boxed().collect(Collectors.toList());
  }

  private static Instant publishTime(String stream, long sequence) throws Exception {
    return JetStreamReadCore.toInstant(SERVER.sharedConnection().jetStreamManagement().getMessage(stream, sequence).getTime());
  }

  /** Publishes one message per offset, its payload the event time base + offset in epoch millis. */
  private static void publishEventTimes(String stream, Instant base, long[] offsetsSeconds) throws Exception {
    publish(
        SERVER.sharedConnection(),
        i -> stream + ".x",
        offsetsSeconds.length,
        i -> String.valueOf(base.plus(Duration.standardSeconds(offsetsSeconds[i])).getMillis()).getBytes(StandardCharsets.UTF_8),
        i -> null);
  }

  /** Event time = the payload, as epoch millis. */
  private static final class PayloadMillis implements SerializableFunction<NatsMessage, Instant> {
    @Override
    public Instant apply(NatsMessage message) {
      return new Instant(Long.parseLong(message.getPayloadAsString()));
    }
  }

  private static PipelineOptions optionsWithExperiment(String experiment) {
    PipelineOptions options = PipelineOptionsFactory.create();
    ExperimentalOptions.addExperiment(options.as(ExperimentalOptions.class), experiment);
    return options;
  }

  private static List<PTransform<?, ?>> transformsOf(Pipeline pipeline) {
    List<PTransform<?, ?>> transforms = new ArrayList<>();
    pipeline.traverseTopologically(
        new Pipeline.PipelineVisitor.Defaults() {
          @Override
          public CompositeBehavior enterCompositeTransform(TransformHierarchy.Node node) {
            if (node.getTransform() != null) {
              transforms.add(node.getTransform());
            }
            return CompositeBehavior.ENTER_TRANSFORM;
          }

          @Override
          public void visitPrimitiveTransform(TransformHierarchy.Node node) {
            transforms.add(node.getTransform());
          }
        });
    return transforms;
  }

  private static List<Read.Unbounded<?>> unboundedReadsIn(List<PTransform<?, ?>> transforms) {
    List<Read.Unbounded<?>> reads = new ArrayList<>();
    for (PTransform<?, ?> transform : transforms) {
      if (transform instanceof Read.Unbounded) {
        reads.add((Read.Unbounded<?>) transform);
      }
    }
    return reads;
  }

  /** How many primitive ParDos run NatsIO's splittable stream DoFn. */
  private static int splittableReadsIn(List<PTransform<?, ?>> transforms) {
    int count = 0;
    for (PTransform<?, ?> transform : transforms) {
      if (transform instanceof ParDo.MultiOutput && ((ParDo.MultiOutput<?, ?>) transform).getFn() instanceof ReadFromJetStreamDoFn) {
        count++;
      }
    }
    return count;
  }
}
