package dev.natsio.beam.testing;

import io.nats.client.Connection;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.stream.Collectors;

/**
 * "Nothing more will come" for Core-subject reads, without sleeping: marker messages ("end0",
 * "end1", ...) published after the data. The server delivers a subscription's messages in order, so
 * once a read has output the marker each of its subscriptions got, it has output everything those
 * subscriptions got before: a duplicate of an earlier message would be in the output already.
 */
public final class CoreMarkers {
  private static final String PREFIX = "end";

  private CoreMarkers() {}

  /**
   * For a queue group: publishes markers one at a time on {@code subject} until the server (its
   * monitoring API) delivered one to every subscription of {@code group} on {@code subscribed},
   * beyond the {@code delivered} data messages, then waits until {@code output} (the read's payloads
   * as strings) holds every marker. Fails after 60 s. Returns how many markers it published.
   */
  public static int awaitEveryQueueMemberOutputAMarker(
      NatsTestServer server, Connection publisher, String subject, String subscribed, String group, long delivered,
      Supplier<List<String>> output) throws Exception {
    long deadline = System.currentTimeMillis() + 60_000;
    Map<String, Long> before = awaitDeliveries(server, subscribed, group, delivered, deadline);
    int markers = 0;
    for (Map<String, Long> now = before; !everyMemberGotMore(before, now); ) {
      publisher.publish(subject, (PREFIX + markers++).getBytes(StandardCharsets.UTF_8));
      publisher.flush(Duration.ofSeconds(10));
      now = awaitDeliveries(server, subscribed, group, delivered + markers, deadline);
    }
    awaitMarkersOutput(markers, output, deadline);
    return markers;
  }

  /**
   * For plain subscriptions (each gets every message): publishes one marker on {@code subject} and
   * waits until every one of {@code outputs} holds it. Fails after 60 s.
   */
  @SafeVarargs
  public static void awaitEveryReaderOutputAMarker(Connection publisher, String subject, Supplier<List<String>>... outputs)
      throws Exception {
    long deadline = System.currentTimeMillis() + 60_000;
    publisher.publish(subject, (PREFIX + 0).getBytes(StandardCharsets.UTF_8));
    publisher.flush(Duration.ofSeconds(10));
    for (Supplier<List<String>> output : outputs) {
      awaitMarkersOutput(1, output, deadline);
    }
  }

  /** The payloads that are not markers. */
  public static List<String> withoutMarkers(List<String> payloads) {
    return payloads.stream().filter(p -> !p.startsWith(PREFIX)).collect(Collectors.toList());
  }

  private static void awaitMarkersOutput(int markers, Supplier<List<String>> output, long deadline) throws InterruptedException {
    while (output.get().stream().filter(p -> p.startsWith(PREFIX)).count() < markers) {
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("The read did not output all " + markers + " markers");
      }
      Thread.sleep(50);
    }
  }

  private static boolean everyMemberGotMore(Map<String, Long> before, Map<String, Long> now) {
    return before.keySet().stream().allMatch(sub -> now.getOrDefault(sub, 0L) > before.get(sub));
  }

  /** The server's deliveries per subscription of the group, once they add up to {@code total}. */
  private static Map<String, Long> awaitDeliveries(NatsTestServer server, String subscribed, String group, long total, long deadline)
      throws InterruptedException {
    while (true) {
      Map<String, Long> deliveries = server.queueSubscriberDeliveriesById(subscribed, group);
      if (deliveries.values().stream().mapToLong(Long::longValue).sum() == total) {
        return deliveries;
      }
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("The server delivered " + deliveries + " to group " + group + ", not " + total + " in all");
      }
      Thread.sleep(50); // The monitoring API counts a delivery a moment after it happened.
    }
  }
}
