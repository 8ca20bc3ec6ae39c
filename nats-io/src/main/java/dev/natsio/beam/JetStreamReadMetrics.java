package dev.natsio.beam;

import java.util.List;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Gauge;
import org.apache.beam.sdk.metrics.Lineage;
import org.apache.beam.sdk.metrics.Metrics;

/**
 * What a position-tracked JetStream read of one stream reports, whichever way it runs (the
 * splittable {@link ReadFromJetStreamDoFn} or the {@link JetStreamUnboundedSource}): counters of
 * messages and bytes read, in total and for the stream, a backlog gauge for the stream, and the
 * stream as a lineage source.
 *
 * <p>Beam's metric objects find the runner's container when they are updated, so an instance can
 * be kept and updated per message without allocating; updates count only where the runner has put
 * the step's container in place (a DoFn's methods, a source reader's {@code start}/{@code advance}).
 */
final class JetStreamReadMetrics {
  static final String NAMESPACE = "NatsIO";
  private static final Counter MESSAGES_READ = Metrics.counter(NAMESPACE, "messagesRead");
  private static final Counter BYTES_READ = Metrics.counter(NAMESPACE, "bytesRead");

  private final Counter streamMessagesRead;
  private final Counter streamBytesRead;
  private final Gauge backlog;

  private JetStreamReadMetrics(String stream) {
    this.streamMessagesRead = Metrics.counter(NAMESPACE, "messagesRead/" + stream);
    this.streamBytesRead = Metrics.counter(NAMESPACE, "bytesRead/" + stream);
    this.backlog = Metrics.gauge(NAMESPACE, "backlogMessages/" + stream);
  }

  static JetStreamReadMetrics forStream(String stream) {
    return new JetStreamReadMetrics(stream);
  }

  void recordRead(long messages, long bytes) {
    if (messages > 0) {
      MESSAGES_READ.inc(messages);
      BYTES_READ.inc(bytes);
      streamMessagesRead.inc(messages);
      streamBytesRead.inc(bytes);
    }
  }

  /** Messages stored after the read's position: how far behind the stream it is. */
  void recordBacklog(long backlogMessages) {
    backlog.set(Math.max(0, backlogMessages));
  }

  /** The stream as a source in Beam's lineage, named by its first server without credentials. */
  static void reportLineage(NatsIO.ConnectionConfiguration configuration, String stream) {
    List<String> servers = NatsUrls.withoutCredentials(configuration.getServers());
    Lineage.getSources().add("nats", List.of(servers.isEmpty() ? "" : servers.get(0), stream));
  }
}
