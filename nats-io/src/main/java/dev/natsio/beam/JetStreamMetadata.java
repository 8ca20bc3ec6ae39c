package dev.natsio.beam;

import io.nats.client.Connection;
import io.nats.client.JetStreamApiException;
import io.nats.client.JetStreamManagement;
import io.nats.client.api.AckPolicy;
import io.nats.client.api.ConsumerConfiguration;
import io.nats.client.api.ConsumerInfo;
import io.nats.client.api.DeliverPolicy;
import io.nats.client.api.MessageInfo;
import io.nats.client.api.RetentionPolicy;
import io.nats.client.api.StreamInfo;
import io.nats.client.api.StreamState;
import java.io.IOException;
import java.time.Duration;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.util.List;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

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
  private static final Logger LOG = LoggerFactory.getLogger(JetStreamMetadata.class);
  /** JetStream API error code for "stream not found". */
  static final int STREAM_NOT_FOUND = 10059;
  /** JetStream API error code for "no message found". */
  static final int NO_MESSAGE_FOUND = 10037;
  /** JetStream API error code for "JetStream system temporarily unavailable": no leader, for now. */
  static final int TEMPORARILY_UNAVAILABLE = 10008;

  private final Connection connection;
  private final JetStreamManagement jsm;
  private final String servers;

  JetStreamMetadata(Connection connection, NatsIO.ConnectionConfiguration configuration) {
    String displayServers = configuration.displayServers();
    try {
      this.jsm = connection.jetStreamManagement(configuration.jetStreamOptions());
    } catch (IOException e) {
      throw new NatsIOException("JetStream is not available at " + displayServers + ": " + e.getMessage(), e);
    }
    this.connection = connection;
    this.servers = displayServers;
  }

  /**
   * The stream {@code descriptor} names, once it is known to be readable by NatsIO's ordered
   * consumers: a work-queue stream (which forbids them and which an ack-none read cannot drain) and
   * several filter subjects on a server older than 2.10 are refused with what to do instead; an
   * interest-retention stream is read with a warning.
   */
  StreamInfo readableStream(NatsSourceDescriptor descriptor) {
    String stream = descriptor.getStream();
    StreamInfo info = streamInfo(stream);
    RetentionPolicy retention = info.getConfiguration().getRetentionPolicy();
    if (retention == RetentionPolicy.WorkQueue) {
      throw new NatsIOException(
          "JetStream stream '" + stream + "' on " + servers
              + " is a work-queue stream. NatsIO's position-tracked read uses ordered consumers, which a work-queue "
              + "stream does not allow, and never acknowledges, so it cannot drain one. Read it through a durable "
              + "consumer, which acknowledges each message once the runner has committed it: "
              + "NatsIO.read().withStream(\"" + stream + "\").withConsumer(\"name\") for an existing pull consumer, or "
              + ".withConsumerConfiguration(ConsumerConfiguration.builder().durable(\"name\").build()) to create one.");
    }
    if (retention == RetentionPolicy.Interest) {
      LOG.warn(
          "JetStream stream '{}' has interest retention: while NatsIO's ack-none reader is its only consumer, the server "
              + "may delete messages as soon as they are delivered. Other consumers keep their own copies. To read it "
              + "at-least-once with acknowledgements, use withConsumer(...).",
          stream);
    }
    List<String> subjects = info.getConfiguration().getSubjects();
    for (String filter : descriptor.getFilterSubjects()) {
      // A stream without subjects (a mirror, or one fed by sources) takes any filter the server allows.
      if (!subjects.isEmpty() && subjects.stream().noneMatch(subject -> NatsNames.isSubsetOf(filter, subject))) {
        throw new NatsIOException(
            "Filter subject '" + filter + "' is outside stream '" + stream + "', whose subjects are " + subjects
                + ". Give withFilterSubjects(...) subjects within those (e.g. '" + subjects.get(0) + "' or a narrower one), "
                + "or read the stream that stores '" + filter + "'.");
      }
    }
    if (descriptor.getFilterSubjects().size() > 1 && !connection.getServerInfo().isSameOrNewerThanVersion("2.10.0")) {
      throw new NatsIOException(
          "Reading stream '" + stream + "' with several filter subjects " + descriptor.getFilterSubjects()
              + " needs nats-server 2.10 or newer, but " + servers + " runs " + connection.getServerInfo().getVersion()
              + ". Use one wildcard filter, or one NatsSourceDescriptor per subject with readSourceDescriptors().");
    }
    return info;
  }

  /**
   * Logs a read's resolved range at INFO, and warns when a bounded range holds no message that
   * matches the read's filters: such a read finishes at once with no output, which otherwise looks
   * like success. The warning lists the stream's subjects, the likeliest fix.
   */
  void logResolvedRange(NatsSourceDescriptor descriptor, StreamInfo info, long from, long to, long splits) {
    String stream = descriptor.getStream();
    String filters = descriptor.getFilterSubjects().isEmpty() ? "all subjects" : "filter " + descriptor.getFilterSubjects();
    if (to == Long.MAX_VALUE) {
      LOG.info("Reading stream '{}' ({}) from sequence {}, unbounded", stream, filters, from);
      return;
    }
    LOG.info("Reading stream '{}' ({}): sequences [{}, {}) in {} split(s)", stream, filters, from, to, splits);
    MessageInfo next;
    try {
      next = nextMessage(stream, from, descriptor.getFilterSubjects());
    } catch (IOException | RuntimeException e) {
      return; // Only a warning: the read itself reports a server that does not answer.
    }
    if (next == null || next.getSeq() >= to) {
      LOG.warn("The bounded read of stream '{}' ({}) finds no message in sequences [{}, {}): it will output nothing. "
              + "The stream's subjects are {}; it holds {} message(s) in sequences [{}, {}].",
          stream, filters, from, to, info.getConfiguration().getSubjects(), info.getStreamState().getMsgCount(),
          info.getStreamState().getFirstSequence(), info.getStreamState().getLastSequence());
    }
  }

  /**
   * Where a read of {@code descriptor} starts in a stream now in {@code state}: its start sequence
   * (raised to the stream's first), the first sequence stored at or after its start time, or the
   * stream's first sequence.
   */
  long startSequence(NatsSourceDescriptor descriptor, StreamState state) {
    long first = Math.max(1, state.getFirstSequence());
    if (descriptor.getStartSequence() != null) {
      return Math.max(first, descriptor.getStartSequence());
    }
    if (descriptor.getStartTime() != null) {
      return Math.max(first, firstSequenceAtOrAfter(descriptor.getStream(), descriptor.getStartTime()).sequence);
    }
    return first;
  }

  /** The stream's configuration and state; a missing stream is a clear error naming it. */
  StreamInfo streamInfo(String stream) {
    try {
      return jsm.getStreamInfo(stream);
    } catch (JetStreamApiException e) {
      if (e.getApiErrorCode() == STREAM_NOT_FOUND) {
        String bucket = KeyValueBuckets.bucketOf(stream);
        String problem = bucket != null
            ? KeyValueBuckets.missingBucket(bucket, servers)
            : "JetStream stream '" + stream + "' does not exist on " + servers
                + ". Create it first (for example 'nats stream add " + stream + "'), or correct the name given to withStream(...).";
        throw JetStreamReadCore.permanent(problem, e);
      }
      throw new NatsIOException("Could not read JetStream stream '" + stream + "' on " + servers + ": " + e.getMessage(), e);
    } catch (IOException e) {
      NatsIOException refusal = refusal(stream, e);
      if (refusal != null) {
        throw refusal;
      }
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
   * empty), or null when the stream holds none. Throws {@link IOException} when the server did not
   * answer, and {@link NatsIOException} when it refused (see {@link #refusal}).
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
        if (isTemporarilyUnavailable(e)) {
          throw new IOException(e.getMessage(), e); // A cluster without a leader: an outage, not a refusal.
        }
        if (e.getApiErrorCode() != NO_MESSAGE_FOUND) {
          throw apiRefusal(stream, "$JS.API.STREAM.MSG.GET." + stream, e);
        }
      } catch (IOException e) {
        NatsIOException refusal = refusal(stream, e);
        if (refusal != null) {
          throw refusal;
        }
        throw e;
      }
    }
    return first;
  }

  /**
   * The refusal behind {@code timeout}, a request about {@code stream} that got no answer, or null
   * when it was an outage. jnats lets a request to a subject the user may not publish to time out
   * and reports the violation only to the connection's error listener; NatsIO's listener keeps
   * those subjects.
   */
  @Nullable NatsIOException refusal(String stream, IOException timeout) {
    if (isTemporarilyUnavailable(timeout.getCause())) {
      return null;
    }
    if (timeout.getCause() instanceof JetStreamApiException) {
      return apiRefusal(stream, "the JetStream API", (JetStreamApiException) timeout.getCause());
    }
    if (!(connection.getOptions().getErrorListener() instanceof NatsConnections.FirstConnectErrors)) {
      return null;
    }
    NatsConnections.FirstConnectErrors errors = (NatsConnections.FirstConnectErrors) connection.getOptions().getErrorListener();
    String denied = errors.deniedApiSubjectFor(stream);
    if (denied == null) {
      return null;
    }
    return JetStreamReadCore.permanent(
        "Reading JetStream stream '" + stream + "' on " + servers + " needs permission to publish to '" + denied
            + "' (a JetStream API request), which the server denied to this user. Grant it in the user's permissions "
            + "(publish allow \"$JS.API.>\" or that subject); the read cannot tell where its range ends or whether it "
            + "has caught up without it.",
        null);
  }

  private NatsIOException apiRefusal(String stream, String request, JetStreamApiException e) {
    if (e.getApiErrorCode() == STREAM_NOT_FOUND) {
      return JetStreamReadCore.permanent(
          "JetStream stream '" + stream + "' no longer exists on " + servers + " (deleted while it was read?). The read "
              + "stops rather than wait for it: recreate the stream and start the pipeline again.", e);
    }
    return new NatsIOException(
        "JetStream refused " + request + " for stream '" + stream + "' on " + servers + ": " + e.getMessage(), e);
  }

  /**
   * True for JetStream's answer that it has no leader for the request (a cluster that lost its
   * quorum, an election): an outage to wait out, as a request without answer is.
   */
  static boolean isTemporarilyUnavailable(@Nullable Throwable error) {
    return error instanceof JetStreamApiException && ((JetStreamApiException) error).getApiErrorCode() == TEMPORARILY_UNAVAILABLE;
  }

  /** False while the connection is down or reconnecting: any request now would wait out its timeout. */
  boolean isConnected() {
    return connection.getStatus() == Connection.Status.CONNECTED;
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
