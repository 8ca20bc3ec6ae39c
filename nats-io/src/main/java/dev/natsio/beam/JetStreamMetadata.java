package dev.natsio.beam;

import io.nats.client.Connection;
import io.nats.client.JetStreamApiException;
import io.nats.client.JetStreamManagement;
import io.nats.client.api.AckPolicy;
import io.nats.client.api.ConsumerConfiguration;
import io.nats.client.api.ConsumerInfo;
import io.nats.client.api.DeliverPolicy;
import io.nats.client.api.MessageInfo;
import io.nats.client.api.StreamInfo;
import java.io.IOException;
import java.time.Duration;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.util.List;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * The JetStream management calls a read needs, with errors that say what to do.
 *
 * <p>Everything here asks the server about positions, never reads payloads in bulk: the stream's
 * state (first and last sequence, bytes), the first sequence at or after a time, and the next
 * sequence at or after a position that matches the read's filters. The last one lets a bounded
 * read prove that the rest of its range holds nothing (deleted, purged or filtered-out sequences)
 * and finish, instead of waiting for messages that will never come.
 */
final class JetStreamMetadata {
  /** JetStream API error code for "stream not found". */
  static final int STREAM_NOT_FOUND = 10059;
  /** JetStream API error code for "no message found". */
  static final int NO_MESSAGE_FOUND = 10037;

  private final JetStreamManagement jsm;
  private final String servers;

  JetStreamMetadata(Connection connection, NatsIO.ConnectionConfiguration configuration) {
    String displayServers = configuration.displayServers();
    try {
      this.jsm = connection.jetStreamManagement(configuration.jetStreamOptions());
    } catch (IOException e) {
      throw new NatsIOException("JetStream is not available at " + displayServers + ": " + e.getMessage(), e);
    }
    this.servers = displayServers;
  }

  /** The stream's configuration and state; a missing stream is a clear error naming it. */
  StreamInfo streamInfo(String stream) {
    try {
      return jsm.getStreamInfo(stream);
    } catch (JetStreamApiException e) {
      if (e.getApiErrorCode() == STREAM_NOT_FOUND) {
        throw new NatsIOException(
            "JetStream stream '" + stream + "' does not exist on " + servers
                + ". Create it first (for example 'nats stream add " + stream + "'), or correct the name given to withStream(...).");
      }
      throw new NatsIOException("Could not read JetStream stream '" + stream + "' on " + servers + ": " + e.getMessage(), e);
    } catch (IOException e) {
      throw new NatsIOException(
          "Could not read JetStream stream '" + stream + "' on " + servers + ": " + e.getMessage()
              + ". Is JetStream enabled on the server (nats-server -js)?",
          e);
    }
  }

  /**
   * The first sequence whose message was stored at or after {@code time}, or the stream's last
   * sequence + 1 when there is none yet. Found through a short-lived ack-none consumer, which works
   * on every server version (a by-time direct get needs nats-server 2.11).
   */
  TimedPosition firstSequenceAtOrAfter(String stream, Instant time) {
    ConsumerConfiguration probe =
        ConsumerConfiguration.builder()
            .deliverPolicy(DeliverPolicy.ByStartTime)
            .startTime(ZonedDateTime.ofInstant(java.time.Instant.ofEpochMilli(time.getMillis()), ZoneOffset.UTC))
            .ackPolicy(AckPolicy.None)
            .inactiveThreshold(Duration.ofSeconds(10))
            .description("NatsIO position probe")
            .build();
    ConsumerInfo info;
    try {
      info = jsm.addOrUpdateConsumer(stream, probe);
    } catch (JetStreamApiException | IOException e) {
      streamInfo(stream); // Turns a missing stream into its clear error.
      throw new NatsIOException("Could not find the position of " + time + " in stream '" + stream + "' on " + servers + ": " + e.getMessage(), e);
    }
    try {
      return new TimedPosition(info.getDelivered().getStreamSequence() + 1, info.getNumPending() > 0);
    } finally {
      try {
        jsm.deleteConsumer(stream, info.getName());
      } catch (JetStreamApiException | IOException e) {
        // The inactive threshold removes it anyway.
      }
    }
  }

  /**
   * The first message at or after {@code sequence} on any of {@code filters} (all subjects when
   * empty), or null when the stream holds none.
   */
  @Nullable MessageInfo nextMessage(String stream, long sequence, List<String> filters) throws IOException {
    MessageInfo first = null;
    for (String filter : filters.isEmpty() ? List.of(">") : filters) {
      try {
        MessageInfo next = jsm.getNextMessage(stream, Math.max(1, sequence), filter);
        if (first == null || next.getSeq() < first.getSeq()) {
          first = next;
        }
      } catch (JetStreamApiException e) {
        if (e.getApiErrorCode() != NO_MESSAGE_FOUND) {
          throw new IOException("next-message lookup in stream '" + stream + "' failed: " + e.getMessage(), e);
        }
      }
    }
    return first;
  }

  /** A sequence found for a time, and whether a message at or after that time exists yet. */
  static final class TimedPosition {
    final long sequence;
    final boolean exists;

    TimedPosition(long sequence, boolean exists) {
      this.sequence = sequence;
      this.exists = exists;
    }
  }
}
