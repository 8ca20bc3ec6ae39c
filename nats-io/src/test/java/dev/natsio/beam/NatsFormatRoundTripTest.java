package dev.natsio.beam;

import static dev.natsio.beam.FormatTestData.ORDER;
import static dev.natsio.beam.FormatTestData.orders;
import static dev.natsio.beam.FormatTestData.utf8;
import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;
import static org.hamcrest.Matchers.lessThan;
import static org.hamcrest.Matchers.lessThanOrEqualTo;

import dev.natsio.beam.testing.JetStreamTestData;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import io.nats.client.JetStreamSubscription;
import io.nats.client.Message;
import io.nats.client.PullSubscribeOptions;
import io.nats.client.api.ConsumerConfiguration;
import io.nats.client.impl.Headers;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.errorhandling.BadRecord;
import org.apache.beam.sdk.transforms.errorhandling.ErrorHandler.BadRecordErrorHandler;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.Row;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Instant;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;

/**
 * Rows written with {@link NatsIO#formatRows} and {@link NatsIO#write()} to a real nats-server, and
 * read back with {@link NatsIO#read()} and {@link NatsIO#parsePayloads}, on the Direct runner.
 */
public class NatsFormatRoundTripTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final transient TestPipeline writing = TestPipeline.create();
  @Rule public final transient TestPipeline reading = TestPipeline.create();

  private final Connection connection = SERVER.sharedConnection();

  private NatsIO.Read read(String stream) {
    return NatsIO.read().withServers(SERVER.url()).withStream(stream).withStopAtEndOfStream();
  }

  /** Writes {@code rows} to stream {@code stream} (subject {@code stream + ".rows"}) through formatRows and a JetStream write. */
  private void write(String stream, FormatRows format, List<Row> rows, org.apache.beam.sdk.schemas.Schema schema) throws Exception {
    createStream(connection, stream, stream + ".>");
    writing.apply(Create.of(rows).withRowSchema(schema)).apply(format).apply(NatsIO.write().withServers(SERVER.url()).withJetStream());
    writing.run().waitUntilFinish();
  }

  /** Writes the rows in {@code format}, reads them back and asserts the same rows come out. */
  private void assertRoundTrip(String stream, NatsFormat format, List<Row> rows) throws Exception {
    write(stream, NatsIO.formatRows(format, stream + ".rows"), rows, format.getSchema());
    PAssert.that(reading.apply(read(stream)).apply(NatsIO.parsePayloads(format))).containsInAnyOrder(rows);
    reading.run().waitUntilFinish();
  }

  private static List<Row> singleField(NatsFormat format, List<?> values) {
    return values.stream().map(v -> Row.withSchema(format.getSchema()).addValue(v).build()).collect(Collectors.toList());
  }

  private static long storedMessages(String stream) throws Exception {
    return SERVER.sharedConnection().jetStreamManagement().getStreamInfo(stream).getStreamState().getMsgCount();
  }

  // ---- One round trip per format ---------------------------------------------------------------

  @Test
  public void jsonRowsWrittenAndReadBackAreEqual() throws Exception {
    assertRoundTrip("rtjson", NatsFormat.json(ORDER), orders(0, 500));
    assertThat(storedMessages("rtjson"), equalTo(500L));
  }

  @Test
  public void avroRowsWrittenAndReadBackAreEqual() throws Exception {
    assertRoundTrip("rtavro", NatsFormat.avro(ORDER), orders(0, 500));
    assertThat(storedMessages("rtavro"), equalTo(500L));
  }

  @Test
  public void arrowRowsWrittenInBatchesAndReadBackAreEqual() throws Exception {
    List<Row> rows = orders(0, 2_000);
    assertRoundTrip("rtarrow", NatsFormat.arrow(ORDER), rows);
    // Batches of at most 500 (the default) per bundle: at least 4 messages, and far fewer than rows.
    assertThat(storedMessages("rtarrow"), greaterThanOrEqualTo(4L));
    assertThat(storedMessages("rtarrow"), lessThan(100L));
  }

  @Test
  public void utf8StringRowsWrittenAndReadBackAreEqual() throws Exception {
    NatsFormat text = NatsFormat.string();
    assertRoundTrip("rttext", text, singleField(text, List.of("plain", "", "ünïcödé ✓", "emoji 🚀", "two\nlines")));
  }

  @Test
  public void bytesRowsWrittenAndReadBackAreEqual() throws Exception {
    NatsFormat bytes = NatsFormat.bytes();
    assertRoundTrip("rtbytes", bytes, singleField(bytes, List.of(new byte[0], new byte[] {0, (byte) 0xff, '\n'}, utf8("text"))));
  }

  // ---- Framing ---------------------------------------------------------------------------------

  @Test
  public void newlineDelimitedJsonIsWrittenInBatchesOfTheBatchSizeAndReadBackOneRowPerLine() throws Exception {
    NatsFormat lines = NatsFormat.json(ORDER).withNewlineDelimited();
    List<Row> rows = orders(0, 1_000);
    write("rtlines", NatsIO.formatRows(lines, "rtlines.rows").withBatchSize(100), rows, ORDER);

    List<Message> stored = fetchAll("rtlines", 1_000);
    assertThat(stored.size(), greaterThanOrEqualTo(10));
    for (Message message : stored) {
      long lineCount = new String(message.getData(), java.nio.charset.StandardCharsets.UTF_8).lines().count();
      assertThat(lineCount, lessThanOrEqualTo(100L));
    }
    PAssert.that(reading.apply(read("rtlines")).apply(NatsIO.parsePayloads(lines))).containsInAnyOrder(rows);
    reading.run().waitUntilFinish();
  }

  @Test
  public void newlineDelimitedPayloadsFromAnotherClientSplitIntoOneRowPerLine() throws Exception {
    createStream(connection, "ndjson", "ndjson.>");
    // Ten messages of five lines, with CRLF endings and blank lines as other producers write them.
    JetStreamTestData.publish(connection, i -> "ndjson.in", 10,
        i -> utf8(IntStream.range(0, 5).mapToObj(j -> "line " + (i * 5 + j) + "\r\n\n").collect(Collectors.joining())),
        i -> null);

    PCollection<Row> rows = reading.apply(read("ndjson")).apply(NatsIO.parsePayloads(NatsFormat.string("line").withNewlineDelimited()));
    PAssert.that(rows.apply(MapElements.into(TypeDescriptors.strings()).via(r -> r.getString("line"))))
        .containsInAnyOrder(IntStream.range(0, 50).mapToObj(i -> "line " + i).collect(Collectors.toList()));
    reading.run().waitUntilFinish();
  }

  // ---- Metadata, event time, other sources -----------------------------------------------------

  @Test
  public void metadataFieldCarriesSubjectStreamSequencePublishTimeAndHeaders() throws Exception {
    createStream(connection, "meta", "meta.>");
    JetStreamTestData.publish(connection, i -> "meta.s" + i, 3, i -> utf8("p" + i), i -> new Headers().add("k", "v" + i));
    Instant after = Instant.now();

    PCollection<Row> rows = reading.apply(read("meta")).apply(NatsIO.parsePayloads(NatsFormat.string()).withMetadata());
    PAssert.that(rows).satisfies(all -> {
      List<Row> list = new ArrayList<>();
      all.forEach(list::add);
      assertThat(list.size(), equalTo(3));
      for (Row row : list) {
        int i = Integer.parseInt(row.getString("payload").substring(1));
        Row nats = row.getRow(ParsePayloads.DEFAULT_METADATA_FIELD);
        assertThat(nats.getString("subject"), equalTo("meta.s" + i));
        assertThat(nats.getString("stream"), equalTo("meta"));
        assertThat(nats.getInt64("sequence"), equalTo(i + 1L));
        assertThat(nats.getDateTime("timestamp").isAfter(after), equalTo(false));
        assertThat(nats.<String, List<String>>getMap("headers"), equalTo(Map.of("k", List.of("v" + i))));
      }
      return null;
    });
    reading.run().waitUntilFinish();
  }

  @Test
  public void rowsCarryTheirFieldTimeWhenTheReadStampsMessagesWithTheFormatsTimestampFn() throws Exception {
    NatsFormat lines = NatsFormat.json(ORDER).withNewlineDelimited();
    List<Row> rows = orders(0, 300);
    write("evtime", NatsIO.formatRows(lines, "evtime.rows").withBatchSize(30), rows, ORDER);

    PCollection<KV<Long, Instant>> stamped = reading
        .apply(read("evtime").withTimestampFn(lines.timestampFn("ts"), org.joda.time.Duration.standardMinutes(1)))
        .apply(NatsIO.parsePayloads(lines).withTimestampField("ts"))
        .apply(ParDo.of(new IdAndTimestampFn()));
    PAssert.that(stamped).containsInAnyOrder(
        rows.stream().map(r -> KV.of(r.getInt64("id"), r.getDateTime("ts").toInstant())).collect(Collectors.toList()));
    reading.run().waitUntilFinish();
  }

  @Test
  public void rowEarlierThanItsPublishTimeIsABadRecordSayingToReadWithTheTimestampFn() throws Exception {
    write("late", NatsIO.formatRows(NatsFormat.json(ORDER), "late.rows"), orders(0, 3), ORDER);

    // The rows' times are in 2024, long before their publish time, which stamps them in a default read.
    BadRecordErrorHandler<PCollection<String>> errors = reading.registerBadRecordErrorHandler(new Descriptions());
    PCollection<Row> rows = reading.apply(read("late"))
        .apply(NatsIO.parsePayloads(NatsFormat.json(ORDER)).withTimestampField("ts").withBadRecordErrorHandler(errors));
    errors.close();
    PAssert.that(rows).empty();
    PAssert.that(errors.getOutput()).satisfies(descriptions -> {
      List<String> all = new ArrayList<>();
      descriptions.forEach(all::add);
      assertThat(all.size(), equalTo(3));
      for (String description : all) {
        assertThat(description, containsString("is before its message's timestamp"));
        assertThat(description, containsString("withTimestampFn(format.timestampFn(\"ts\"), maxDelay)"));
      }
      return null;
    });
    reading.run().waitUntilFinish();
  }

  @Test
  public void payloadsReadThroughReadSourceDescriptorsParseLikeThoseOfARead() throws Exception {
    createStream(connection, "descr", "descr.>");
    JetStreamTestData.publish(connection, i -> "descr.x", 20, i -> utf8("m" + i), i -> null);

    PCollection<Row> rows = reading
        .apply(Create.of(NatsSourceDescriptor.of("descr").withStopAtEndOfStream()))
        .apply(NatsIO.readSourceDescriptors().withServers(SERVER.url()).withBounded())
        .apply(NatsIO.parsePayloads(NatsFormat.string("text")));
    PAssert.that(rows.apply(MapElements.into(TypeDescriptors.strings()).via(r -> r.getString("text"))))
        .containsInAnyOrder(IntStream.range(0, 20).mapToObj(i -> "m" + i).collect(Collectors.toList()));
    reading.run().waitUntilFinish();
  }

  /** Each row's id and element timestamp. */
  private static final class IdAndTimestampFn extends DoFn<Row, KV<Long, Instant>> {
    @ProcessElement
    public void process(@Element Row row, @Timestamp Instant timestamp, OutputReceiver<KV<Long, Instant>> out) {
      out.output(KV.of(row.getInt64("id"), timestamp));
    }
  }

  /** An error sink for tests: the description of each bad record. */
  static final class Descriptions extends PTransform<PCollection<BadRecord>, PCollection<String>> {
    @Override
    public PCollection<String> expand(PCollection<BadRecord> input) {
      return input.apply(MapElements.into(TypeDescriptors.strings()).via(r -> r.getFailure().getDescription()));
    }
  }

  /** Every message of {@code stream}, read with plain jnats. */
  private static List<Message> fetchAll(String stream, int atMost) throws Exception {
    JetStreamSubscription subscription = SERVER.sharedConnection().jetStream().subscribe(null,
        PullSubscribeOptions.builder().stream(stream).configuration(ConsumerConfiguration.builder().build()).build());
    List<Message> messages = new ArrayList<>();
    long expected = storedMessages(stream);
    while (messages.size() < expected) {
      List<Message> batch = subscription.fetch(atMost, Duration.ofSeconds(2));
      if (batch.isEmpty()) {
        break;
      }
      messages.addAll(batch);
    }
    subscription.unsubscribe();
    return messages;
  }
}
