package dev.natsio.beam;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * Per-JVM readers parked between bundles under their read's id: the Core subscriptions of {@link
 * ReadFromCoreSubjectDoFn} and the durable-consumer pulls of {@link ReadFromDurableConsumerDoFn}.
 *
 * <p>Neither kind has a position the restriction could resume from (the subscription, or the
 * server-side consumer, is the position), so the next bundle of the same read must get the same
 * reader back: a bundle takes it, and parks it when it ends. The id is one per read transform, so
 * two reads in one JVM never share one. A reader parked longer than the idle timeout (its read moved
 * to another worker, or the pipeline stopped) is closed by a background sweep, and a DoFn's
 * teardown closes its read's parked reader.
 */
final class ParkedReaders<R extends ParkedReaders.Reader> {
  /** A reader that can be closed outside any bundle, saying why. */
  interface Reader {
    void closeParked(String reason);
  }

  private final String name;
  private final long idleTimeoutMillis;
  private final Map<String, Parked<R>> idle = new HashMap<>();
  private @Nullable ScheduledExecutorService sweeper;

  ParkedReaders(String name, long idleTimeoutMillis) {
    this.name = name;
    this.idleTimeoutMillis = idleTimeoutMillis;
  }

  /** Removes and returns the reader parked for {@code readId}, or null. */
  synchronized @Nullable R take(String readId) {
    Parked<R> parked = idle.remove(readId);
    return parked == null ? null : parked.reader;
  }

  /** Parks {@code reader} for the next bundle of {@code readId}. */
  void park(String readId, R reader) {
    Parked<R> previous;
    synchronized (this) {
      previous = idle.put(readId, new Parked<>(reader, System.currentTimeMillis()));
      startSweeperIfNeeded();
    }
    if (previous != null && previous.reader != reader) {
      previous.reader.closeParked("a newer reader of the same read was parked");
    }
  }

  /** Closes the reader parked for {@code readId}, if any. */
  void closeIdle(String readId, String reason) {
    Parked<R> parked;
    synchronized (this) {
      parked = idle.remove(readId);
    }
    if (parked != null) {
      parked.reader.closeParked(reason);
    }
  }

  synchronized int parkedCount() {
    return idle.size();
  }

  void sweep() {
    long cutoff = System.currentTimeMillis() - idleTimeoutMillis;
    List<R> expired = new ArrayList<>();
    synchronized (this) {
      for (Iterator<Parked<R>> it = idle.values().iterator(); it.hasNext(); ) {
        Parked<R> parked = it.next();
        if (parked.parkedAtMillis < cutoff) {
          expired.add(parked.reader);
          it.remove();
        }
      }
    }
    for (R reader : expired) {
      reader.closeParked("no bundle used it for " + idleTimeoutMillis / 1000 + " s");
    }
  }

  private void startSweeperIfNeeded() {
    if (sweeper == null) {
      sweeper =
          Executors.newSingleThreadScheduledExecutor(
              runnable -> {
                Thread thread = new Thread(runnable, "natsio-" + name + "-sweeper");
                thread.setDaemon(true);
                return thread;
              });
      long period = Math.max(1_000, idleTimeoutMillis / 6);
      sweeper.scheduleWithFixedDelay(this::sweep, period, period, TimeUnit.MILLISECONDS);
    }
  }

  private static final class Parked<R> {
    final R reader;
    final long parkedAtMillis;

    Parked(R reader, long parkedAtMillis) {
      this.reader = reader;
      this.parkedAtMillis = parkedAtMillis;
    }
  }
}
