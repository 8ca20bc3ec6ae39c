package dev.natsio.beam;

/**
 * Spaces messages at least {@code 1 / rate} seconds apart, for {@code withMaxMessagesPerSecond}.
 *
 * <p>Each reader keeps one: a DoFn instance (a transient field; it reads one restriction at a time)
 * or a source reader, so the limit holds per reader. There is no burst allowance: the first message
 * passes at once and each next one waits for its slot, so over any interval of {@code t} seconds a
 * pacer lets through at most {@code rate * t + 1} messages. A new pacer (another instance, another
 * worker) starts with one free message, which is the slack the limit is documented with.
 */
final class RatePacer {
  private final long intervalNanos;
  private long nextNanos;

  RatePacer(double messagesPerSecond) {
    this.intervalNanos = (long) (1_000_000_000L / messagesPerSecond);
    this.nextNanos = System.nanoTime();
  }

  /** How long until the next message may be output (0 or less: now). */
  long nanosUntilNextSlot() {
    return nextNanos - System.nanoTime();
  }

  /** Waits until the next message may be output, and reserves that slot. */
  void acquire() throws InterruptedException {
    long now = System.nanoTime();
    long wait = nextNanos - now;
    if (wait > 0) {
      Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
    }
    nextNanos = Math.max(nextNanos, now) + intervalNanos;
  }
}
