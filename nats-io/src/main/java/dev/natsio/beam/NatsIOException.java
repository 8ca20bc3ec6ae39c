package dev.natsio.beam;

/**
 * An error NatsIO raises about the NATS side of a pipeline: an unreachable server, a missing
 * stream, a consumer the server refused. Its message names the server or stream and says what to
 * change; it never carries a password, token or seed.
 */
public class NatsIOException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** An error whose message says what failed and what to do. */
  public NatsIOException(String message) {
    super(message);
  }

  /** An error whose message says what failed and what to do, caused by {@code cause}. */
  public NatsIOException(String message, Throwable cause) {
    super(message, cause);
  }
}
