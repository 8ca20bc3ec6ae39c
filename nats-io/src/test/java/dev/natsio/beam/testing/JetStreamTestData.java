package dev.natsio.beam.testing;

import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.api.PublishAck;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import io.nats.client.impl.Headers;
import io.nats.client.impl.NatsMessage;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;

/** Streams and messages for tests, written with plain jnats so the reader under test is not involved. */
public final class JetStreamTestData {
  private static final int IN_FLIGHT = 5_000;

  private JetStreamTestData() {}

  /** Creates a file-backed stream capturing {@code subjects}. */
  public static void createStream(Connection connection, String name, String... subjects) throws Exception {
    createStream(connection, StreamConfiguration.builder().name(name).subjects(subjects).storageType(StorageType.File).build());
  }

  public static void createStream(Connection connection, StreamConfiguration configuration) throws Exception {
    connection.jetStreamManagement().addStream(configuration);
  }

  /** The payload {@link #publish} writes for message {@code i}: {@code "m<i>"}. */
  public static byte[] payload(int i) {
    return ("m" + i).getBytes(StandardCharsets.UTF_8);
  }

  /** Publishes messages 0..count-1 to {@code subject} with payload {@link #payload}, waiting for every ack. */
  public static void publish(Connection connection, String subject, int count) throws Exception {
    publish(connection, i -> subject, count, JetStreamTestData::payload, i -> null);
  }

  /**
   * Publishes {@code count} messages asynchronously with at most {@value #IN_FLIGHT} unacknowledged,
   * then waits for every ack; the subject, payload and headers of message {@code i} come from the
   * functions (null headers for none).
   */
  public static void publish(
      Connection connection, IntFunction<String> subject, int count, IntFunction<byte[]> payload, IntFunction<Headers> headers)
      throws Exception {
    publish(connection, subject, count, payload, headers, IN_FLIGHT);
  }

  /**
   * As {@link #publish(Connection, IntFunction, int, IntFunction, IntFunction)}, with at most
   * {@code maxInFlight} unacknowledged: the benchmarks' write baseline uses NatsIO's window.
   */
  public static void publish(
      Connection connection, IntFunction<String> subject, int count, IntFunction<byte[]> payload, IntFunction<Headers> headers,
      int maxInFlight)
      throws Exception {
    JetStream js = connection.jetStream();
    Deque<CompletableFuture<PublishAck>> inFlight = new ArrayDeque<>();
    for (int i = 0; i < count; i++) {
      if (inFlight.size() >= maxInFlight) {
        inFlight.removeFirst().get(30, TimeUnit.SECONDS);
      }
      inFlight.addLast(
          js.publishAsync(NatsMessage.builder().subject(subject.apply(i)).data(payload.apply(i)).headers(headers.apply(i)).build()));
    }
    while (!inFlight.isEmpty()) {
      inFlight.removeFirst().get(30, TimeUnit.SECONDS);
    }
  }
}
