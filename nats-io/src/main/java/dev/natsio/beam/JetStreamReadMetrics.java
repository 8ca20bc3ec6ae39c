package dev.natsio.beam;

import java.util.List;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Lineage;
import org.apache.beam.sdk.metrics.Metrics;

/**
 * What a position-tracked JetStream read reports, whichever way it runs (the splittable {@link
 * ReadFromJetStreamDoFn} or the {@link JetStreamUnboundedSource}): counters of messages and bytes
 * read, in total and per stream, a backlog gauge per stream, and the stream as a lineage source.
 * Beam's metric objects resolve the runner's container when used, so these can be shared.
 */
final class JetStreamReadMetrics {
  static final String NAMESPACE = "NatsIO";
  private static final Counter MESSAGES_READ = Metrics.counter(NAMESPACE, "messagesRead");
  private static final Counter BYTES_READ = Metrics.counter(NAMESPACE, "bytesRead");

  private JetStreamReadMetrics() {}

  static void recordRead(String stream, long messages, long bytes) {
    if (messages > 0) {
      MESSAGES_READ.inc(messages);
      BYTES_READ.inc(bytes);
      Metrics.counter(NAMESPACE, "messagesRead/" + stream).inc(messages);
      Metrics.counter(NAMESPACE, "bytesRead/" + stream).inc(bytes);
    }
  }

  /** Messages stored after the read's position: how far behind the stream it is. */
  static void recordBacklog(String stream, long backlogMessages) {
    Metrics.gauge(NAMESPACE, "backlogMessages/" + stream).set(Math.max(0, backlogMessages));
  }

  /** The stream as a source in Beam's lineage, named by its first server without credentials. */
  static void reportLineage(NatsIO.ConnectionConfiguration configuration, String stream) {
    List<String> servers = NatsUrls.withoutCredentials(configuration.getServers());
    Lineage.getSources().add("nats", List.of(servers.isEmpty() ? "" : servers.get(0), stream));
  }
}
