package dev.natsio.beam;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.BiPredicate;
import java.util.function.Predicate;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * Per-JVM readers parked between bundles under a key that says which bundle may take them back.
 *
 * <p>Three kinds use it. The Core subscriptions of {@link ReadFromCoreSubjectDoFn} and the
 * durable-consumer pulls of {@link ReadFromDurableConsumerDoFn} have no position a restriction could
 * resume from (the subscription, or the server-side consumer, is the position), so they are parked
 * under their read's id and the next bundle of the same read must get the same reader back. The
 * ordered consumers of {@link ReadFromJetStreamDoFn} are parked under where they would read next
 * ({@link JetStreamReader.Position}): the call that resumes a restriction at exactly that sequence
 * takes the reader back instead of opening a consumer and discarding its prefetched batch.
 *
 * <p>A reader parked longer than the idle timeout (its read moved to another worker, or the
 * pipeline stopped) is closed by a background sweep, and a DoFn's teardown closes the readers it
 * parked itself (not those of other instances on the same connection).
 */
final class ParkedReaders<K, R extends ParkedReaders.Reader> {
  /** A reader that can be closed outside any bundle, saying why. */
  interface Reader {
    void closeParked(String reason);
  }

  private final String name;
  private final long idleTimeoutMillis;
  private final Map<K, Parked<R>> idle = new HashMap<>();
  private @Nullable ScheduledExecutorService sweeper;

  ParkedReaders(String name, long idleTimeoutMillis) {
    this.name = name;
    this.idleTimeoutMillis = idleTimeoutMillis;
  }

  /** Removes and returns the reader parked under {@code key}, or null. */
  synchronized @Nullable R take(K key) {
    Parked<R> parked = idle.remove(key);
    return parked == null ? null : parked.reader;
  }

  /** Parks {@code reader} under {@code key}; a reader already parked there is closed. */
  void park(K key, R reader) {
    park(key, reader, null);
  }

  /**
   * Parks {@code reader} under {@code key} for {@code owner} (the DoFn instance that last used it),
   * whose teardown may close it with {@link #closeIdleOwnedBy}.
   */
  void park(K key, R reader, @Nullable Object owner) {
    Parked<R> previous;
    synchronized (this) {
      previous = idle.put(key, new Parked<>(reader, System.currentTimeMillis(), owner));
      startSweeperIfNeeded();
    }
    if (previous != null && previous.reader != reader) {
      previous.reader.closeParked("a newer reader was parked in its place");
    }
  }

  /** Closes the reader parked under {@code key}, if any. */
  void closeIdle(K key, String reason) {
    closeIdleWhere(key::equals, reason);
  }

  /** Closes every parked reader whose key matches. */
  void closeIdleWhere(Predicate<K> keyMatches, String reason) {
    for (R reader : removeWhere((key, parked) -> keyMatches.test(key))) {
      reader.closeParked(reason);
    }
  }

  /**
   * Closes the readers {@code owner} parked and no one took since: one DoFn instance's teardown
   * leaves the readers other instances in the JVM parked on the same connection alone.
   */
  void closeIdleOwnedBy(Object owner, String reason) {
    for (R reader : removeWhere((key, parked) -> parked.owner == owner)) {
      reader.closeParked(reason);
    }
  }

  synchronized int parkedCount() {
    return idle.size();
  }

  void sweep() {
    long cutoff = System.currentTimeMillis() - idleTimeoutMillis;
    for (R reader : removeWhere((key, parked) -> parked.parkedAtMillis < cutoff)) {
      reader.closeParked("no bundle used it for " + idleTimeoutMillis + " ms");
    }
  }

  private synchronized List<R> removeWhere(BiPredicate<K, Parked<R>> condition) {
    List<R> removed = new ArrayList<>();
    for (Iterator<Map.Entry<K, Parked<R>>> it = idle.entrySet().iterator(); it.hasNext(); ) {
      Map.Entry<K, Parked<R>> entry = it.next();
      if (condition.test(entry.getKey(), entry.getValue())) {
        removed.add(entry.getValue().reader);
        it.remove();
      }
    }
    return removed;
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
    final @Nullable Object owner;

    Parked(R reader, long parkedAtMillis, @Nullable Object owner) {
      this.reader = reader;
      this.parkedAtMillis = parkedAtMillis;
      this.owner = owner;
    }
  }
}
