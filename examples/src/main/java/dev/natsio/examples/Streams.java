package dev.natsio.examples;

import io.nats.client.Connection;
import io.nats.client.JetStreamApiException;
import io.nats.client.JetStreamManagement;
import io.nats.client.api.StreamConfiguration;
import java.io.IOException;

/** Set-up the examples share: a stream made fresh for each run, so that runs do not add up. */
final class Streams {
  private Streams() {}

  /** Deletes the stream {@code config} names if it exists, then creates it. */
  static void recreate(Connection connection, StreamConfiguration config) throws IOException, JetStreamApiException {
    JetStreamManagement jsm = connection.jetStreamManagement();
    try {
      jsm.deleteStream(config.getName());
    } catch (JetStreamApiException e) {
      if (e.getApiErrorCode() != 10059) { // 10059: stream not found, the usual case on a first run.
        throw e;
      }
    }
    jsm.addStream(config);
  }
}
