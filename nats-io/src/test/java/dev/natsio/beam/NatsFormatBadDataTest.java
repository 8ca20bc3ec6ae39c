package dev.natsio.beam;

import static dev.natsio.beam.FormatTestData.ORDER;
import static dev.natsio.beam.FormatTestData.order;
import static dev.natsio.beam.FormatTestData.orders;
import static dev.natsio.beam.FormatTestData.payload;
import static dev.natsio.beam.FormatTestData.utf8;
import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.instanceOf;
import static org.hamcrest.Matchers.not;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.api.PublishAck;
import java.util.ArrayList;
import java.util.Arrays;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.apache.beam.sdk.Pipeline.PipelineExecutionException;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.coders.CoderException;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.Flatten;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.errorhandling.BadRecord;
import org.apache.beam.sdk.transforms.errorhandling.ErrorHandler.BadRecordErrorHandler;
import org.apache.beam.sdk.util.CoderUtils;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionList;
import org.apache.beam.sdk.values.Row;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;
import org.joda.time.Instant;

/**
 * Each bad-record policy of {@link NatsIO#parsePayloads} against payloads published to a real
 * nats-server with plain jnats: malformed JSON, an empty payload, an Avro datum of another schema,
 * a truncated Arrow stream and invalid UTF-8, next to good payloads of each format.
 */
public class NatsFormatBadDataTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  private static final String STREAM = "mixed";
  private static Connection connection;
  /** What was published, in order: subject to payloads. */
  private static final Map<String, List<byte[]>> PUBLISHED = new LinkedHashMap<>();
  /** The stream sequence of each bad payload, by subject (each bad subject holds one). */
  private static final Map<String, Long> BAD_SEQUENCES = new HashMap<>();
  private static final int BAD_PAYLOADS = 5;
  private static final int GOOD_ROWS = 7;

  @BeforeClass
  public static void publishGoodAndBadPayloads() throws Exception {
    connection = SERVER.connect();
    createStream(connection, STREAM, "json.>", "avro.>", "arrow.>", "text.>");
    byte[] arrowStream = payload(NatsFormat.arrow(ORDER), orders(0, 50));
    publish("json.good", payload(NatsFormat.json(ORDER), List.of(order(1))));
    publish("json.malformed", utf8("{\"id\": 2, \"customer\": \"c\",, }"));
    publish("json.empty", new byte[0]);
    publish("json.good", payload(NatsFormat.json(ORDER), List.of(order(3))));
    publish("avro.good", payload(NatsFormat.avro(ORDER), List.of(order(4))));
    publish("avro.wrongschema", FormatTestData.avroDatumOfAnotherSchema());
    publish("arrow.good", payload(NatsFormat.arrow(ORDER), orders(5, 8)));
    publish("arrow.truncated", Arrays.copyOf(arrowStream, arrowStream.length - 100));
    publish("text.good", utf8("fine"));
    publish("text.invalidutf8", FormatTestData.invalidUtf8());
  }

  private static void publish(String subject, byte[] payload) throws Exception {
    PublishAck ack = connection.jetStream().publish(subject, payload);
    PUBLISHED.computeIfAbsent(subject, s -> new ArrayList<>()).add(payload);
    if (!subject.endsWith(".good")) {
      BAD_SEQUENCES.put(subject, ack.getSeqno());
    }
  }

  @AfterClass
  public static void disconnect() throws InterruptedException {
    connection.close();
  }

  private static NatsIO.Read read(String filterSubject) {
    return NatsIO.read().withServers(SERVER.url()).withStream(STREAM).withFilterSubjects(filterSubject).withStopAtEndOfStream();
  }

  /** Each format's read and parse over its own subjects; the rows as text, since their schemas differ. */
  private PCollection<String> parseEveryFormat(UnaryOperator<ParsePayloads> policy) {
    Map<String, NatsFormat> formats = new LinkedHashMap<>();
    formats.put("json.>", NatsFormat.json(ORDER));
    formats.put("avro.>", NatsFormat.avro(ORDER));
    formats.put("arrow.>", NatsFormat.arrow(ORDER));
    formats.put("text.>", NatsFormat.string());
    List<PCollection<String>> parsed = new ArrayList<>();
    formats.forEach((filter, format) -> parsed.add(
        pipeline.apply("Read " + filter, read(filter))
            .apply("Parse " + filter, policy.apply(NatsIO.parsePayloads(format)))
            .apply("Text of " + filter, MapElements.into(TypeDescriptors.strings()).via(Row::toString))));
    return PCollectionList.of(parsed).apply("Every format's rows", Flatten.pCollections());
  }

  private static List<String> goodRowsAsText() {
    List<String> good = new ArrayList<>();
    for (Row row : List.of(order(1), order(3), order(4), order(5), order(6), order(7),
        Row.withSchema(NatsFormat.string().getSchema()).addValue("fine").build())) {
      good.add(row.toString());
    }
    assertThat(good.size(), equalTo(GOOD_ROWS));
    return good;
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

  // ---- Fail (the default) ----------------------------------------------------------------------

  /** Runs a default (failing) parse of the one bad payload on {@code subject}; returns the error message. */
  private String failureOf(String subject, NatsFormat format) {
    pipeline.apply(read(subject)).apply(NatsIO.parsePayloads(format));
    PipelineExecutionException error = assertThrows(PipelineExecutionException.class, () -> pipeline.run().waitUntilFinish());
    assertThat(error.getCause(), instanceOf(NatsIOException.class));
    String message = error.getCause().getMessage();
    assertThat(message, containsString(
        "the message at stream '" + STREAM + "' sequence " + BAD_SEQUENCES.get(subject) + " (subject '" + subject + "')"));
    assertThat(message, containsString("withBadRecordErrorHandler(...) or withDropBadRecords()"));
    return message;
  }

  @Test
  public void malformedJsonFailsThePipelineNamingStreamSequenceSubjectAndProblem() {
    assertThat(failureOf("json.malformed", NatsFormat.json(ORDER)),
        containsString("as json: Unexpected character (',' (code 44)): was expecting double-quote to start field name"));
  }

  @Test
  public void emptyJsonPayloadFailsThePipelineNamingStreamSequenceSubjectAndProblem() {
    assertThat(failureOf("json.empty", NatsFormat.json(ORDER)), containsString("(0 bytes) as json: the payload is empty"));
  }

  @Test
  public void avroDatumOfAnotherSchemaFailsThePipelineNamingStreamSequenceSubjectAndProblem() {
    assertThat(failureOf("avro.wrongschema", NatsFormat.avro(ORDER)), containsString("it was not written with this schema"));
  }

  @Test
  public void truncatedArrowStreamFailsThePipelineNamingStreamSequenceSubjectAndProblem() {
    assertThat(failureOf("arrow.truncated", NatsFormat.arrow(ORDER)), containsString("as arrow: the Arrow IPC stream has no end-of-stream marker"));
  }

  @Test
  public void invalidUtf8FailsThePipelineNamingStreamSequenceSubjectAndProblem() {
    assertThat(failureOf("text.invalidutf8", NatsFormat.string()),
        containsString("as string: not valid UTF-8: malformed byte sequence at byte 6"));
  }

  // ---- Drop ------------------------------------------------------------------------------------

  @Test
  public void droppedBadRecordsAreCountedOneForOneAndEveryGoodRowIsOutput() {
    PCollection<String> rows = parseEveryFormat(ParsePayloads::withDropBadRecords);
    PAssert.that(rows).containsInAnyOrder(goodRowsAsText());
    PipelineResult result = pipeline.run();
    result.waitUntilFinish();

    assertThat(counter(result, "badRecordsDropped"), equalTo((long) BAD_PAYLOADS));
    assertThat(counter(result, "badRecords"), equalTo((long) BAD_PAYLOADS));
    assertThat(counter(result, "rowsParsed"), equalTo((long) GOOD_ROWS));
  }

  @Test
  public void droppingBadRecordsLogsAWarningNamingTheRecordAndTheProblemButNotThePayload() {
    String secretLookingPayload = "{\"id\": 7, \"name\": \"top-secret-value\"";
    pipeline
        .apply(Create.of(NatsMessage.of("json.bad", secretLookingPayload.getBytes(StandardCharsets.UTF_8),
            Collections.emptyMap(), "S", 5L, Instant.now())).withCoder(NatsMessageCoder.of()))
        .apply(NatsIO.parsePayloads(NatsFormat.json(ORDER)).withDropBadRecords());
    try (LogCapture logs = new LogCapture()) {
      pipeline.run().waitUntilFinish();
      assertThat(logs.text(), containsString("Dropped 1 bad record(s)"));
      assertThat(logs.text(), containsString("stream 'S' sequence 5"));
      assertThat(logs.text(), not(containsString("top-secret-value")));
    }
  }

  // ---- Error handler ---------------------------------------------------------------------------

  @Test
  public void errorHandlerReceivesEachBadPayloadWithItsSubjectSequenceBytesAndProblem() {
    BadRecordErrorHandler<PCollection<String>> errors = pipeline.registerBadRecordErrorHandler(new FailedMessages());
    PCollection<String> rows = parseEveryFormat(parse -> parse.withBadRecordErrorHandler(errors));
    errors.close();

    PAssert.that(rows).containsInAnyOrder(goodRowsAsText());
    List<String> expected = new ArrayList<>();
    for (String subject : BAD_SEQUENCES.keySet()) {
      expected.add(subject + " sequence=" + BAD_SEQUENCES.get(subject) + " payload=" + base64(PUBLISHED.get(subject).get(0)));
    }
    PAssert.that(errors.getOutput()).containsInAnyOrder(expected);
    PipelineResult result = pipeline.run();
    result.waitUntilFinish();

    assertThat(counter(result, "badRecords"), equalTo((long) BAD_PAYLOADS));
    assertThat(counter(result, "badRecordsDropped"), equalTo(0L));
  }

  @Test
  public void errorHandlerRecordsDescribeTheProblemAndRenderTheMessageAsJson() {
    BadRecordErrorHandler<PCollection<String>> errors = pipeline.registerBadRecordErrorHandler(new DescriptionsAndJson());
    pipeline.apply(read("text.>")).apply(NatsIO.parsePayloads(NatsFormat.string()).withBadRecordErrorHandler(errors));
    errors.close();

    PAssert.that(errors.getOutput()).satisfies(all -> {
      List<String> list = new ArrayList<>();
      all.forEach(list::add);
      assertThat(list.size(), equalTo(1));
      assertThat(list.get(0), containsString("Could not parse the payload of the message at stream 'mixed' sequence "
          + BAD_SEQUENCES.get("text.invalidutf8") + " (subject 'text.invalidutf8') (8 bytes) as string: not valid UTF-8"));
      assertThat(list.get(0), containsString("\"subject\" : \"text.invalidutf8\""));
      assertThat(list.get(0), containsString("\"payload\" : \"" + base64(FormatTestData.invalidUtf8()) + "\""));
      return null;
    });
    pipeline.run().waitUntilFinish();
  }

  private static String base64(byte[] bytes) {
    return Base64.getEncoder().encodeToString(bytes);
  }

  /** An error sink: each bad record's message, decoded from the record's own coder bytes. */
  private static final class FailedMessages extends PTransform<PCollection<BadRecord>, PCollection<String>> {
    @Override
    public PCollection<String> expand(PCollection<BadRecord> input) {
      return input.apply(MapElements.into(TypeDescriptors.strings()).via(r -> {
        try {
          NatsMessage message = CoderUtils.decodeFromByteArray(NatsMessageCoder.of(), r.getRecord().getEncodedRecord());
          return message.getSubject() + " sequence=" + message.getSequence() + " payload=" + base64(message.getPayload());
        } catch (CoderException e) {
          throw new IllegalStateException(e);
        }
      }));
    }
  }

  /** An error sink: each bad record's description and human-readable JSON record. */
  private static final class DescriptionsAndJson extends PTransform<PCollection<BadRecord>, PCollection<String>> {
    @Override
    public PCollection<String> expand(PCollection<BadRecord> input) {
      return input.apply(MapElements.into(TypeDescriptors.strings())
          .via(r -> r.getFailure().getDescription() + "\n" + r.getRecord().getHumanReadableJsonRecord()));
    }
  }
}
