package dev.natsio.examples;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.allOf;
import static org.hamcrest.Matchers.containsInAnyOrder;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.not;
import static org.hamcrest.Matchers.startsWith;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.NatsTestServer;
import dev.natsio.beam.testing.TeeOutputStream;
import io.nats.client.api.StreamInfoOptions;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * Runs every example as its command would, against one test server, and checks what it prints.
 *
 * <p>This module's class path is a user's project with only the README's dependency block: {@code
 * nats-io}, the Direct and Flink runners, a logging binding. Neither Avro nor Arrow is on it (the
 * first test checks), so the JSON example proves that a JSON pipeline needs neither.
 */
public class ExamplesTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  private static final String[] FLINK = {"--runner=FlinkRunner", "--flinkMaster=[local]", "--parallelism=2"};

  @Test
  public void classPathHasNeitherAvroNorArrow() {
    assertThrows(ClassNotFoundException.class, () -> Class.forName("org.apache.avro.Schema"));
    assertThrows(ClassNotFoundException.class, () -> Class.forName("org.apache.arrow.vector.VectorSchemaRoot"));
    assertThrows(ClassNotFoundException.class, () -> Class.forName("org.apache.beam.sdk.extensions.avro.schemas.utils.AvroUtils"));
  }

  @Test
  public void ordersByRegionTotalsJsonOrdersWithoutAvroOnDirect() throws Exception {
    assertThat(regionLines(run(OrdersByRegion::main)), containsInAnyOrder(expectedRegionTotals()));
  }

  @Test
  public void ordersByRegionTotalsJsonOrdersWithoutAvroOnFlink() throws Exception {
    assertThat(regionLines(run(OrdersByRegion::main, FLINK)), containsInAnyOrder(expectedRegionTotals()));
  }

  @Test
  public void demoSaysExactlyOnceAfterCountingWhatItRead() throws Exception {
    String output = run(Demo::main);
    assertThat(output, containsString("Done: read 3,000 messages, 3,000 distinct sequences, 3,000 published: every order exactly once."));
  }

  @Test
  public void copyStreamRerunStoresNothingTwiceOnDirect() throws Exception {
    assertCopied(run(CopyStream::main));
  }

  @Test
  public void copyStreamRerunStoresNothingTwiceOnFlink() throws Exception {
    assertCopied(run(CopyStream::main, FLINK));
  }

  private static void assertCopied(String output) throws Exception {
    assertThat(output, allOf(containsString("After run 1 the copy holds 50 messages"), containsString("After run 2 the copy holds 50 messages")));
    Map<String, Long> subjects = SERVER.sharedConnection().jetStreamManagement()
        .getStreamInfo("example_copy", StreamInfoOptions.allSubjects()).getStreamState().getSubjectMap();
    assertThat(subjects, equalTo(Map.of("example.copy.eu", 25L, "example.copy.us", 25L)));
  }

  @Test
  public void deadLettersGetTheBadPayloadsWithTheirReasons() throws Exception {
    String output = run(DeadLetters::main);
    assertThat(output, containsString("Parsed 10 good orders"));
    List<String> letters = output.lines().filter(l -> l.startsWith("Dead letter: ")).collect(Collectors.toList());
    assertThat(letters, containsInAnyOrder(
        allOf(startsWith("Dead letter: {\"id\": 99, \"amount\": \"lots\"} | "), containsString("amount")),
        allOf(startsWith("Dead letter: <order id=\"100\"/> | "), containsString("sequence 12"))));
  }

  @Test
  public void coreQueueGroupReadsTheReadingsThroughTheGroup() throws Exception {
    String output = run(CoreQueueGroup::main);
    long read = output.lines().filter(l -> l.startsWith("example.sensors."))
        .mapToLong(l -> Long.parseLong(l.replaceAll(".*: (\\d+) readings", "$1"))).sum();
    assertThat(read, equalTo((long) CoreQueueGroup.READINGS));
    assertThat(output, containsString("through queue group 'ingest'"));
  }

  @Test
  public void workQueueDrainsTheStreamThroughTheDurableConsumer() throws Exception {
    assertThat(run(WorkQueue::main), containsString("Processed 30 jobs; the work queue now holds 0"));
  }

  @Test
  public void streamingTotalsWritesOneTotalPerEventTimeWindowOnFlink() throws Exception {
    String output = run(StreamingTotals::main, "--flinkMaster=[local]", "--parallelism=2");
    List<String> totals = output.lines().filter(l -> l.startsWith("window total ")).map(l -> l.replaceAll(".*\"total\": ", ""))
        .collect(Collectors.toList());
    List<String> expected = new ArrayList<>();
    for (int w = 0; w < StreamingTotals.WINDOWS; w++) {
      double total = 0;
      for (int id = w * StreamingTotals.TRADES_PER_WINDOW; id < (w + 1) * StreamingTotals.TRADES_PER_WINDOW; id++) {
        total += StreamingTotals.amountOf(id);
      }
      expected.add(String.format("%.1f}", total));
    }
    assertThat(totals, containsInAnyOrder(expected.toArray(new String[0])));
    assertThat(output, containsString(StreamingTotals.WINDOWS + " window totals in stream 'example_totals'"));
  }

  @Test
  public void secureConnectionWritesAndReadsOverTlsWithAPassword() throws Exception {
    try (NatsTestServer secure = NatsTestServer.builder().withTls().withUserPassword("example", "pa55-example").build()) {
      secure.start();
      System.setProperty("nats.password", "pa55-example");
      String output;
      try {
        output = runAgainst(secure.url(), SecureConnection::main, "--natsUser=example",
            "--caCertificateFile=" + secure.certificates().caPem());
      } finally {
        System.clearProperty("nats.password");
      }
      assertThat(output, allOf(containsString("Read back 5 messages over TLS as user 'example'"), not(containsString("pa55-example"))));
    }
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private static String[] expectedRegionTotals() {
    List<String> lines = new ArrayList<>();
    for (int r = 0; r < OrdersByRegion.REGIONS.length; r++) {
      int count = 0;
      double total = 0;
      for (int id = r; id < OrdersByRegion.ORDERS; id += OrdersByRegion.REGIONS.length) {
        count++;
        total += OrdersByRegion.amountOf(id);
      }
      lines.add(String.format("region %s: %d orders, total %.2f", OrdersByRegion.REGIONS[r], count, total));
    }
    return lines.toArray(new String[0]);
  }

  private static List<String> regionLines(String output) {
    return output.lines().filter(l -> l.startsWith("region ")).collect(Collectors.toList());
  }

  /** An example's main method. */
  interface Main {
    void run(String[] args) throws Exception;
  }

  /** Runs {@code main} with the test server's URL and {@code args}, returning what it printed. */
  static String run(Main main, String... args) throws Exception {
    return runAgainst(SERVER.url(), main, args);
  }

  /** Runs {@code main} against the server at {@code url} with {@code args}, returning what it printed. */
  static String runAgainst(String url, Main main, String... args) throws Exception {
    String[] all = Stream.concat(Stream.of("--natsUrl=" + url), Arrays.stream(args)).toArray(String[]::new);
    PrintStream original = System.out;
    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    // Tee: the output stays visible in the test's report while the test reads it.
    System.setOut(new PrintStream(new TeeOutputStream(original, captured), true, StandardCharsets.UTF_8));
    try {
      main.run(all);
    } finally {
      System.setOut(original);
    }
    return captured.toString(StandardCharsets.UTF_8);
  }
}
