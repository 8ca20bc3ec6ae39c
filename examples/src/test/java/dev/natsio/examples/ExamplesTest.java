package dev.natsio.examples;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsInAnyOrder;
import static org.hamcrest.Matchers.containsString;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.NatsTestServer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
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
    String[] all = Stream.concat(Stream.of("--natsUrl=" + SERVER.url()), Arrays.stream(args)).toArray(String[]::new);
    PrintStream original = System.out;
    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    // Tee: the output stays visible in the test's report while the test reads it.
    System.setOut(new PrintStream(new TeeStream(original, captured), true, StandardCharsets.UTF_8));
    try {
      main.run(all);
    } finally {
      System.setOut(original);
    }
    return captured.toString(StandardCharsets.UTF_8);
  }

  private static final class TeeStream extends java.io.OutputStream {
    private final PrintStream first;
    private final ByteArrayOutputStream second;

    TeeStream(PrintStream first, ByteArrayOutputStream second) {
      this.first = first;
      this.second = second;
    }

    @Override
    public synchronized void write(int b) {
      first.write(b);
      second.write(b);
    }

    @Override
    public synchronized void write(byte[] b, int off, int len) {
      first.write(b, off, len);
      second.write(b, off, len);
    }
  }
}
