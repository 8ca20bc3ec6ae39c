package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.not;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.fail;

import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import java.util.UUID;
import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.io.UnboundedSource.UnboundedReader;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Duration;
import org.junit.After;
import org.junit.Test;

/**
 * Refusals the JetStream read meets mid-way: a missing permission for the requests that find the
 * end of a range or tell whether the read has caught up, and a stream deleted while it is read.
 * Each fails the read with a message naming the cause, in both read forms, instead of retrying
 * forever.
 */
public class NatsIOReadFailuresTest {
  private static final String DENIED = "$JS.API.STREAM.MSG.GET.>";
  private NatsTestServer server;
  private PipelineResult running;

  @After
  public void stop() throws Exception {
    if (running != null) {
      try {
        running.cancel();
      } catch (Exception e) {
        // Already failed or finished.
      }
    }
    if (server != null) {
      server.close();
    }
  }

  /** A server with an admin user and a reader that may not get messages by sequence. */
  private NatsTestServer serverWithReaderLackingMessageGet() {
    return NatsTestServer.builder()
        .withUserPassword("admin", "admin-password")
        .withRestrictedUser("reader", "reader-password", DENIED)
        .build()
        .start();
  }

  private NatsIO.ConnectionConfiguration asReader() {
    return NatsIO.ConnectionConfiguration.create(server.url()).withUsernamePassword("reader", "reader-password");
  }

  private static Pipeline nonBlockingPipeline() {
    DirectOptions options = PipelineOptionsFactory.create().as(DirectOptions.class);
    options.setBlockOnRun(false);
    return Pipeline.create(options);
  }

  @Test
  public void boundedReadWithoutMessageGetPermissionFailsNamingThePermission() throws Exception {
    server = serverWithReaderLackingMessageGet();
    try (Connection admin = server.connect()) {
      createStream(admin, "guarded", "guarded.>");
      publish(admin, "guarded.x", 5);
      // The range ends after sequence 5, which is gone: only the end-of-range probe can end the read.
      admin.jetStreamManagement().deleteMessage("guarded", 5);
    }
    Pipeline pipeline = nonBlockingPipeline();
    pipeline.apply(NatsIO.read().withConnectionConfiguration(asReader()).withStream("guarded").withStopSequence(6));
    running = pipeline.run();

    Pipeline.PipelineExecutionException error =
        assertThrows(Pipeline.PipelineExecutionException.class, () -> running.waitUntilFinish(Duration.standardSeconds(60)));
    assertThat(messagesOf(error), containsString("$JS.API.STREAM.MSG.GET.guarded"));
    assertThat(messagesOf(error), containsString("permission"));
    assertThat(messagesOf(error), not(containsString("reader-password")));
  }

  @Test
  public void liveSourceWithoutMessageGetPermissionFailsNamingThePermission() throws Exception {
    server = serverWithReaderLackingMessageGet();
    try (Connection admin = server.connect()) {
      createStream(admin, "guarded_live", "guarded_live.>");
      publish(admin, "guarded_live.x", 3);
    }
    NatsIO.Read read = NatsIO.read().withConnectionConfiguration(asReader()).withStream("guarded_live");
    UnboundedReader<NatsMessage> reader =
        new JetStreamUnboundedSource(read.toReadSourceDescriptors(), read.toDescriptor()).createReader(PipelineOptionsFactory.create(), null);
    try {
      NatsIOException error = assertThrows(NatsIOException.class, () -> advanceUntilItThrows(reader, 60_000));
      assertThat(error.getMessage(), containsString("$JS.API.STREAM.MSG.GET.guarded_live"));
    } finally {
      reader.close();
    }
  }

  @Test
  public void streamDeletedDuringALiveReadFailsNamingTheStream() throws Exception {
    server = NatsTestServer.jetStream().start();
    String id = "deleted-" + UUID.randomUUID();
    Connection admin = server.sharedConnection();
    createStream(admin, "doomed", "doomed.>");
    Pipeline pipeline = nonBlockingPipeline();
    pipeline
        .apply(NatsIO.read().withServers(server.url()).withStream("doomed"))
        .apply(MapElements.into(TypeDescriptors.longs()).via(NatsMessage::getSequence))
        .apply(CollectingSink.into(id));
    running = pipeline.run();
    publish(admin, "doomed.x", 10);
    CollectingSink.<Long>await(id, seen -> seen.size() >= 10, 60_000);

    admin.jetStreamManagement().deleteStream("doomed");

    Pipeline.PipelineExecutionException error =
        assertThrows(Pipeline.PipelineExecutionException.class, () -> running.waitUntilFinish(Duration.standardSeconds(60)));
    assertThat(messagesOf(error), containsString("stream 'doomed'"));
  }

  @Test
  public void liveSourceFailsWhenItsStreamIsDeleted() throws Exception {
    server = NatsTestServer.jetStream().start();
    Connection admin = server.sharedConnection();
    createStream(admin, "doomed_source", "doomed_source.>");
    publish(admin, "doomed_source.x", 3);
    NatsIO.Read read = NatsIO.read().withServers(server.url()).withStream("doomed_source");
    UnboundedReader<NatsMessage> reader =
        new JetStreamUnboundedSource(read.toReadSourceDescriptors(), read.toDescriptor()).createReader(PipelineOptionsFactory.create(), null);
    try {
      int read3 = reader.start() ? 1 : 0;
      long deadline = System.currentTimeMillis() + 30_000;
      while (read3 < 3 && System.currentTimeMillis() < deadline) {
        read3 += reader.advance() ? 1 : 0;
      }
      assertThat(read3, equalTo(3));

      admin.jetStreamManagement().deleteStream("doomed_source");

      NatsIOException error = assertThrows(NatsIOException.class, () -> advanceUntilItThrows(reader, 60_000));
      assertThat(error.getMessage(), containsString("stream 'doomed_source'"));
    } finally {
      reader.close();
    }
  }

  /** Calls advance() until it throws; fails after {@code timeoutMillis} if it never does. */
  private static void advanceUntilItThrows(UnboundedReader<NatsMessage> reader, long timeoutMillis) throws Exception {
    long deadline = System.currentTimeMillis() + timeoutMillis;
    boolean started = false;
    while (System.currentTimeMillis() < deadline) {
      if (!started) {
        started = true;
        reader.start();
      } else {
        reader.advance();
      }
    }
    fail("advance() did not fail within " + timeoutMillis + " ms");
  }

  private static String messagesOf(Throwable error) {
    StringBuilder text = new StringBuilder();
    for (Throwable t = error; t != null; t = t.getCause() == t ? null : t.getCause()) {
      text.append(t.getMessage()).append('\n');
    }
    return text.toString();
  }
}
