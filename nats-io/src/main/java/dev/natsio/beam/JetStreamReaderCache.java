package dev.natsio.beam;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * Per-JVM pool of idle {@link JetStreamReader}s, keyed by where they would read next.
 *
 * <p>A runner calls a splittable DoFn's process method once per bundle and resumes the residual
 * restriction in the next call, often on the same worker: every 100 messages or second on the
 * Direct runner, every 10,000 messages or 10 s on Flink. Opening an ordered consumer per call
 * would cost a server round trip and discard a batch of prefetched messages each time. So when a
 * call ends, its reader is parked here under (connection, stream, filters, next sequence), and the
 * call that resumes at exactly that sequence takes it back. A reader whose restriction moved
 * elsewhere (another worker, a restore from an older checkpoint) is never matched; readers idle
 * longer than {@link #IDLE_TIMEOUT_MILLIS} are closed by a background sweep, which deletes their
 * server-side consumers.
 */
final class JetStreamReaderCache {
  static final long IDLE_TIMEOUT_MILLIS = 20_000;
  static final JetStreamReaderCache INSTANCE = new JetStreamReaderCache(IDLE_TIMEOUT_MILLIS);

  private final long idleTimeoutMillis;
  private final Map<Key, Parked> idle = new HashMap<>();
  private @Nullable ScheduledExecutorService sweeper;

  JetStreamReaderCache(long idleTimeoutMillis) {
    this.idleTimeoutMillis = idleTimeoutMillis;
  }

  /** Removes and returns the reader parked at {@code key}, or null. */
  synchronized @Nullable JetStreamReader take(Key key) {
    Parked parked = idle.remove(key);
    return parked == null ? null : parked.reader;
  }

  /** Parks {@code reader} to be resumed at {@code key}; a reader already parked there is closed. */
  void park(Key key, JetStreamReader reader) {
    Parked previous;
    synchronized (this) {
      previous = idle.put(key, new Parked(reader, System.currentTimeMillis()));
      startSweeperIfNeeded();
    }
    if (previous != null && previous.reader != reader) {
      previous.reader.close();
    }
  }

  /** Closes every parked reader of {@code connection} (called when a DoFn instance is torn down). */
  void closeIdle(NatsIO.ConnectionConfiguration connection) {
    closeAll(removeMatching(parked -> true, connection));
  }

  /** Closes readers parked longer than the idle timeout. */
  void sweep() {
    long cutoff = System.currentTimeMillis() - idleTimeoutMillis;
    closeAll(removeMatching(parked -> parked.parkedAtMillis < cutoff, null));
  }

  synchronized int size() {
    return idle.size();
  }

  private synchronized List<JetStreamReader> removeMatching(
      java.util.function.Predicate<Parked> condition, NatsIO.@Nullable ConnectionConfiguration connection) {
    List<JetStreamReader> removed = new ArrayList<>();
    for (Iterator<Map.Entry<Key, Parked>> it = idle.entrySet().iterator(); it.hasNext(); ) {
      Map.Entry<Key, Parked> entry = it.next();
      if ((connection == null || entry.getKey().connection.equals(connection)) && condition.test(entry.getValue())) {
        removed.add(entry.getValue().reader);
        it.remove();
      }
    }
    return removed;
  }

  private static void closeAll(List<JetStreamReader> readers) {
    for (JetStreamReader reader : readers) {
      reader.close();
    }
  }

  private void startSweeperIfNeeded() {
    if (sweeper == null) {
      sweeper =
          Executors.newSingleThreadScheduledExecutor(
              runnable -> {
                Thread thread = new Thread(runnable, "natsio-reader-sweeper");
                thread.setDaemon(true);
                return thread;
              });
      long period = Math.max(1_000, idleTimeoutMillis / 4);
      sweeper.scheduleWithFixedDelay(this::sweep, period, period, TimeUnit.MILLISECONDS);
    }
  }

  private static final class Parked {
    final JetStreamReader reader;
    final long parkedAtMillis;

    Parked(JetStreamReader reader, long parkedAtMillis) {
      this.reader = reader;
      this.parkedAtMillis = parkedAtMillis;
    }
  }

  /** Where a parked reader would read next. */
  static final class Key {
    final NatsIO.ConnectionConfiguration connection;
    final String stream;
    final List<String> filterSubjects;
    final long nextSequence;

    Key(NatsIO.ConnectionConfiguration connection, String stream, List<String> filterSubjects, long nextSequence) {
      this.connection = connection;
      this.stream = stream;
      this.filterSubjects = List.copyOf(filterSubjects);
      this.nextSequence = nextSequence;
    }

    @Override
    public boolean equals(@Nullable Object other) {
      if (!(other instanceof Key)) {
        return false;
      }
      Key that = (Key) other;
      return nextSequence == that.nextSequence
          && connection.equals(that.connection)
          && stream.equals(that.stream)
          && filterSubjects.equals(that.filterSubjects);
    }

    @Override
    public int hashCode() {
      return Objects.hash(connection, stream, filterSubjects, nextSequence);
    }
  }
}
