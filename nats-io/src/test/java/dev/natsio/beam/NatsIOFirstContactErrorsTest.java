package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.allOf;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.not;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.junit.ClassRule;
import org.junit.Test;

/** The errors and log lines a new user meets first: wrong names, URLs and filters, empty reads. */
public class NatsIOFirstContactErrorsTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  private final Connection connection = SERVER.sharedConnection();

  @Test
  public void subjectGivenAsStreamNameIsRefusedWhenThePipelineIsBuilt() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NatsIO.read().withStream("orders.eu"));
    assertThat(e.getMessage(), allOf(containsString("\"orders.eu\" looks like a subject"), containsString("withFilterSubjects")));
  }

  @Test
  public void consumerNameWithWildcardIsRefusedWhenThePipelineIsBuilt() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NatsIO.read().withConsumer("workers.*"));
    assertThat(e.getMessage(), containsString("withConsumer(\"workers.*\")"));
  }

  @Test
  public void httpUrlIsRefusedNamingTheSchemesThatWork() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NatsIO.read().withServers("http://localhost:4222"));
    assertThat(e.getMessage(), allOf(containsString("http://"), containsString("nats://host:4222"), containsString("tls://"),
        not(containsString("credentials"))));
  }

  @Test
  public void filterOutsideTheStreamNamesTheFilterAndTheStreamsSubjects() throws Exception {
    createStream(connection, "outside", "outside.>");
    publish(connection, "outside.a", 3);
    Pipeline pipeline = Pipeline.create(PipelineOptionsFactory.create());
    pipeline.apply(NatsIO.read().withServers(SERVER.url()).withStream("outside").withFilterSubjects("orders.eu.>").withStopAtEndOfStream());

    Exception e = assertThrows(Exception.class, () -> pipeline.run().waitUntilFinish());
    assertThat(messages(e), allOf(containsString("Filter subject 'orders.eu.>' is outside stream 'outside'"), containsString("[outside.>]")));
  }

  @Test
  public void boundedReadWhoseFilterMatchesNothingWarnsWithTheStreamsSubjects() throws Exception {
    createStream(connection, "nomatch", "nomatch.>");
    publish(connection, "nomatch.eu", 5);
    Pipeline pipeline = Pipeline.create(PipelineOptionsFactory.create());
    pipeline.apply(NatsIO.read().withServers(SERVER.url()).withStream("nomatch").withFilterSubjects("nomatch.us").withStopAtEndOfStream());

    try (LogCapture logs = new LogCapture()) {
      pipeline.run().waitUntilFinish();
      assertThat(logs.text(), allOf(containsString("WARN"), containsString("finds no message in sequences [1, 6)"),
          containsString("The stream's subjects are [nomatch.>]")));
    }
  }

  @Test
  public void boundedReadLogsItsResolvedRangeAndSplitCountAtInfo() throws Exception {
    createStream(connection, "ranged", "ranged.>");
    publish(connection, "ranged.x", 10);
    Pipeline pipeline = Pipeline.create(PipelineOptionsFactory.create());
    pipeline.apply(NatsIO.read().withServers(SERVER.url()).withStream("ranged").withStopAtEndOfStream().withSplitSize(4));

    try (LogCapture logs = new LogCapture()) {
      pipeline.run().waitUntilFinish();
      assertThat(logs.text(), containsString("INFO dev.natsio.beam.JetStreamMetadata - Reading stream 'ranged' (all subjects): "
          + "sequences [1, 11) in 3 split(s)"));
    }
  }

  @Test
  public void jnatsConnectionErrorsDoNotGoToJavaUtilLoggingAtSevere() {
    List<LogRecord> severe = new CopyOnWriteArrayList<>();
    Handler handler = new Handler() {
      @Override
      public void publish(LogRecord record) {
        if (record.getLevel().intValue() >= Level.WARNING.intValue()) {
          severe.add(record);
        }
      }

      @Override
      public void flush() {}

      @Override
      public void close() {}
    };
    Logger root = Logger.getLogger("");
    root.addHandler(handler);
    try {
      assertThrows(NatsIOException.class, () -> NatsConnections.connect(
          NatsIO.ConnectionConfiguration.create("nats://127.0.0.1:" + closedPort()).withConnectTimeout(org.joda.time.Duration.millis(500))));
    } finally {
      root.removeHandler(handler);
    }
    assertThat(severe.stream().map(r -> r.getLoggerName() + ": " + r.getMessage()).collect(java.util.stream.Collectors.toList()), empty());
  }

  private static int closedPort() throws Exception {
    try (java.net.ServerSocket socket = new java.net.ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }

  private static String messages(Throwable e) {
    StringBuilder all = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause()) {
      all.append(t.getMessage()).append('\n');
    }
    return all.toString();
  }
}
