package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThan;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.NatsTestCluster;
import io.nats.client.Connection;
import io.nats.client.JetStreamApiException;
import io.nats.client.JetStreamManagement;
import io.nats.client.JetStreamOptions;
import io.nats.client.Nats;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import java.io.Closeable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.beam.runners.core.metrics.MetricsContainerImpl;
import org.apache.beam.sdk.metrics.MetricName;
import org.apache.beam.sdk.metrics.MetricsEnvironment;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.splittabledofn.RestrictionTracker;
import org.apache.beam.sdk.transforms.splittabledofn.SplitResult;
import org.apache.beam.sdk.transforms.splittabledofn.WatermarkEstimator;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.joda.time.Duration;
import org.joda.time.Instant;
import org.junit.Test;

/**
 * Both read forms against a server that stays connected while JetStream has no leader: a
 * 3-node cluster with an R3 stream, two nodes killed, the client on the survivor, whose JetStream
 * requests then go unanswered until a timeout.
 */
public class JetStreamNoLeaderReadTest {
  private static final String STREAM = "noleader";

  @Test
  public void callsReturnWhileTheReadsBackgroundRequestsStayUnanswered() throws Exception {
    try (NatsTestCluster cluster = NatsTestCluster.ofThree().start()) {
      int survivor = createReplicatedStream(cluster);
      // A request timeout (the connect timeout) far longer than a few polls: while one request waits
      // for it, a call that waited for the request could not return.
      Read read = new Read(cluster.node(survivor).url(), Duration.standardSeconds(60));
      try {
        assertThat(read.until(10), equalTo(range(1, 10)));

        loseLeader(cluster, survivor);
        assertCallsReturnWhileTheirRequestsStayUnanswered(read.fn.core(STREAM), read::call);
      } finally {
        read.close();
      }
    }
  }

  @Test
  public void sourceReaderAdvancesWhileItsBackgroundRequestsStayUnanswered() throws Exception {
    try (NatsTestCluster cluster = NatsTestCluster.ofThree().start()) {
      int survivor = createReplicatedStream(cluster);
      NatsIO.Read read = NatsIO.read().withServers(cluster.node(survivor).url()).withStream(STREAM);
      read = read.withConnectionConfiguration(
          read.toReadSourceDescriptors().getConnectionConfiguration().withConnectTimeout(Duration.standardSeconds(60)));
      JetStreamUnboundedSource source = new JetStreamUnboundedSource(read.toReadSourceDescriptors(), read.toDescriptor());
      try (JetStreamUnboundedReader reader = (JetStreamUnboundedReader) source.createReader(PipelineOptionsFactory.create(), null)) {
        List<Long> sequences = new ArrayList<>();
        long deadline = System.currentTimeMillis() + 60_000;
        for (boolean available = reader.start(); sequences.size() < 10 && System.currentTimeMillis() < deadline; available = reader.advance()) {
          if (available) {
            sequences.add(reader.getCurrent().getSequence());
          }
        }
        assertThat(sequences, equalTo(range(1, 10)));

        loseLeader(cluster, survivor);
        assertCallsReturnWhileTheirRequestsStayUnanswered(reader.core(), reader::advance);
      }
    }
  }

  @Test
  public void requestsFailingWithoutLeaderAreCountedWarnedOnceAndTheReadThenContinuesExactlyOnce() throws Exception {
    try (NatsTestCluster cluster = NatsTestCluster.ofThree().start(); LogCapture log = new LogCapture()) {
      int survivor = createReplicatedStream(cluster);
      MetricsContainerImpl metrics = new MetricsContainerImpl("read");
      Read read = new Read(cluster.node(survivor).url(), Duration.millis(500));
      try (Closeable scope = MetricsEnvironment.scopedMetricsContainer(metrics)) {
        List<Long> sequences = new ArrayList<>(read.until(10));

        loseLeader(cluster, survivor);
        // Requests (a new consumer for the one lost, look-aheads) go unanswered or are answered
        // "temporarily unavailable" (10008): outages, counted, never a failure of the read.
        awaitTemporarilyUnavailable(cluster, survivor);
        long before = probeFailures(metrics);
        long deadline = System.currentTimeMillis() + 60_000;
        while (probeFailures(metrics) < before + 2 && System.currentTimeMillis() < deadline) {
          sequences.addAll(read.call());
        }
        assertThat(probeFailures(metrics), greaterThan(before + 1));
        assertThat(warnings(log.text()), equalTo(1L));

        for (int i = 0; i < cluster.size(); i++) {
          if (i != survivor) {
            cluster.restart(i);
          }
        }
        cluster.awaitJetStream();
        publishWithRetry(cluster, 10);
        sequences.addAll(read.until(10 - (sequences.size() - 10)));
        assertThat(sequences, equalTo(range(1, 20)));
      } finally {
        read.close();
      }
    }
  }

  @Test
  public void temporarilyUnavailableAnswerToALookAheadIsAnOutageNotARefusal() throws Exception {
    try (NatsTestCluster cluster = NatsTestCluster.ofThree().start()) {
      int survivor = createReplicatedStream(cluster);
      loseLeader(cluster, survivor);
      awaitTemporarilyUnavailable(cluster, survivor);
      NatsIO.ConnectionConfiguration configuration =
          NatsIO.read().withServers(cluster.node(survivor).url()).withStream(STREAM).toReadSourceDescriptors().getConnectionConfiguration();
      try (NatsConnections.Lease lease = NatsConnections.acquire(configuration)) {
        JetStreamMetadata metadata = new JetStreamMetadata(lease.connection(), configuration);

        // An IOException is retried as an outage; a NatsIOException would fail the read.
        java.io.IOException outage = assertThrows(java.io.IOException.class, () -> metadata.nextMessage(STREAM, 1, List.of()));
        assertThat(((JetStreamApiException) outage.getCause()).getApiErrorCode(), equalTo(JetStreamMetadata.TEMPORARILY_UNAVAILABLE));
      }
    }
  }

  // ---- Helpers ---------------------------------------------------------------------------------

  /**
   * Calls until a statistics refresh and a look-ahead are both under way in the background, then
   * three more times: each of those calls must return while the same two requests stay unanswered.
   */
  private static void assertCallsReturnWhileTheirRequestsStayUnanswered(JetStreamReadCore core, Callable<?> call) throws Exception {
    long deadline = System.currentTimeMillis() + 60_000;
    while (core.requestsInFlight() < 2 && System.currentTimeMillis() < deadline) {
      call.call(); // The statistics are due a second after the last fetch, a look-ahead 250 ms after the last.
    }
    assertThat("background requests outstanding", core.requestsInFlight(), equalTo(2));
    long started = core.requestsStarted();
    int returned = 0;
    while (returned < 3 && core.requestsInFlight() == 2 && core.requestsStarted() == started) {
      call.call();
      returned++;
    }

    assertThat("calls returned while the requests started before them were unanswered", returned, equalTo(3));
    assertThat(core.requestsInFlight(), equalTo(2));
    assertThat(core.requestsStarted(), equalTo(started));
  }

  /** A splittable read of the stream through node 0 only, called as a runner calls it. */
  private static final class Read {
    final ReadFromJetStreamDoFn fn;
    final NatsSourceDescriptor descriptor = NatsSourceDescriptor.of(STREAM);
    final WatermarkEstimator<Instant> watermark;
    RestrictionTracker<LimitedOffsetRange, Long> tracker;

    Read(String url, Duration requestTimeout) {
      NatsIO.Read read = NatsIO.read().withServers(url).withStream(STREAM);
      fn = ReadFromJetStreamDoFn.create(
          read.withConnectionConfiguration(read.toReadSourceDescriptors().getConnectionConfiguration().withConnectTimeout(requestTimeout))
              .toReadSourceDescriptors());
      fn.setup();
      tracker = fn.newTracker(descriptor, fn.initialRestriction(descriptor));
      watermark = fn.newWatermarkEstimator(BoundedWindow.TIMESTAMP_MIN_VALUE);
    }

    /** One call, then the checkpoint a runner takes when it returns "resume"; the sequences output. */
    List<Long> call() throws Exception {
      List<Long> sequences = Collections.synchronizedList(new ArrayList<>());
      fn.processElement(descriptor, tracker, watermark, ReadFromJetStreamDoFnTest.receiver(sequences));
      SplitResult<LimitedOffsetRange> split = tracker.trySplit(0);
      if (split != null) {
        tracker = fn.newTracker(descriptor, split.getResidual());
      }
      return sequences;
    }

    List<Long> until(int count) throws Exception {
      List<Long> sequences = new ArrayList<>();
      long deadline = System.currentTimeMillis() + 60_000;
      while (sequences.size() < count && System.currentTimeMillis() < deadline) {
        sequences.addAll(call());
      }
      return sequences;
    }

    void close() {
      fn.teardown();
    }
  }

  /**
   * Creates the R3 stream with 10 messages; returns a node that does not lead it, the one to keep
   * (a leader left alone may go on answering for a while).
   */
  private static int createReplicatedStream(NatsTestCluster cluster) throws Exception {
    try (Connection connection = cluster.connect()) {
      createStream(connection,
          StreamConfiguration.builder().name(STREAM).subjects("noleader.>").replicas(3).storageType(StorageType.File).build());
      publish(connection, "noleader.x", 10);
    }
    return (cluster.streamLeader(STREAM) + 1) % cluster.size();
  }

  /** Kills every node but {@code survivor} and waits until the survivor, still up, no longer answers for the stream. */
  private static void loseLeader(NatsTestCluster cluster, int survivor) throws Exception {
    for (int i = 0; i < cluster.size(); i++) {
      if (i != survivor) {
        cluster.kill(i);
      }
    }
    try (Connection connection = Nats.connect(cluster.node(survivor).clientOptions().maxReconnects(0).build())) {
      JetStreamManagement jsm =
          connection.jetStreamManagement(JetStreamOptions.builder().requestTimeout(java.time.Duration.ofMillis(500)).build());
      long deadline = System.currentTimeMillis() + 60_000;
      while (true) {
        try {
          jsm.getStreamInfo(STREAM);
        } catch (java.io.IOException e) {
          return; // Unanswered: no leader.
        }
        if (System.currentTimeMillis() > deadline) {
          throw new AssertionError("Node " + survivor + " still answers for stream " + STREAM + " after the two others were killed");
        }
        Thread.sleep(100);
      }
    }
  }

  /** Waits until {@code survivor} answers a message get of the stream with JetStream's 10008. */
  private static void awaitTemporarilyUnavailable(NatsTestCluster cluster, int survivor) throws Exception {
    try (Connection connection = Nats.connect(cluster.node(survivor).clientOptions().maxReconnects(0).build())) {
      JetStreamManagement jsm =
          connection.jetStreamManagement(JetStreamOptions.builder().requestTimeout(java.time.Duration.ofMillis(500)).build());
      long deadline = System.currentTimeMillis() + 60_000;
      while (true) {
        try {
          jsm.getMessage(STREAM, 1);
        } catch (JetStreamApiException e) {
          if (e.getApiErrorCode() == JetStreamMetadata.TEMPORARILY_UNAVAILABLE) {
            return;
          }
        } catch (java.io.IOException e) {
          // Not answered yet.
        }
        if (System.currentTimeMillis() > deadline) {
          throw new AssertionError("Node " + survivor + " never answered 'JetStream system temporarily unavailable'");
        }
        Thread.sleep(100);
      }
    }
  }

  private static void publishWithRetry(NatsTestCluster cluster, int count) throws Exception {
    try (Connection connection = cluster.connect()) {
      long deadline = System.currentTimeMillis() + 60_000;
      for (int i = 0; i < count; i++) {
        while (true) {
          try {
            connection.jetStream().publish("noleader.x", ("r" + i).getBytes());
            break;
          } catch (Exception e) {
            if (System.currentTimeMillis() > deadline) {
              throw e;
            }
            Thread.sleep(200);
          }
        }
      }
    }
  }

  private static long probeFailures(MetricsContainerImpl metrics) {
    return metrics.getCounter(MetricName.named(JetStreamReadMetrics.NAMESPACE, "probeFailures/" + STREAM)).getCumulative();
  }

  private static long warnings(String log) {
    return log.lines().filter(line -> line.contains("WARN") && line.contains("NatsIO/probeFailures/" + STREAM)).count();
  }

  private static List<Long> range(long fromInclusive, long toInclusive) {
    return LongStream.rangeClosed(fromInclusive, toInclusive).boxed().collect(Collectors.toList());
  }
}
