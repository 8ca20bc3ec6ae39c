package dev.natsio.beam.testing;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Predicate;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;

/**
 * Collects a pipeline's elements into this JVM's memory, for tests of unbounded pipelines that
 * never finish (where {@code PAssert} cannot run). Works on the Direct runner and Flink's local
 * mini-cluster, which run in the test's JVM. Each test uses its own id.
 */
public final class CollectingSink {
  private static final Map<String, Queue<Object>> COLLECTED = new ConcurrentHashMap<>();

  private CollectingSink() {}

  /** A transform that adds every element to the collection named {@code id}. */
  public static <T> ParDo.SingleOutput<T, Void> into(String id) {
    COLLECTED.computeIfAbsent(id, k -> new ConcurrentLinkedQueue<>());
    return ParDo.of(new CollectFn<>(id));
  }

  /** What was collected under {@code id} so far. */
  @SuppressWarnings("unchecked")
  public static <T> List<T> collected(String id) {
    return new ArrayList<>((Queue<T>) (Queue<?>) COLLECTED.getOrDefault(id, new ConcurrentLinkedQueue<>()));
  }

  /** Waits until {@code condition} holds for the collection, or throws after {@code timeoutMillis}. */
  public static <T> List<T> await(String id, Predicate<List<T>> condition, long timeoutMillis) throws InterruptedException {
    long deadline = System.currentTimeMillis() + timeoutMillis;
    while (true) {
      List<T> now = collected(id);
      if (condition.test(now)) {
        return now;
      }
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("Timed out after " + timeoutMillis + " ms waiting for collection '" + id + "'; it holds " + now.size() + " elements");
      }
      Thread.sleep(100);
    }
  }

  private static final class CollectFn<T> extends DoFn<T, Void> {
    private final String id;

    CollectFn(String id) {
      this.id = id;
    }

    @ProcessElement
    public void process(@Element T element) {
      COLLECTED.get(id).add(element);
    }
  }
}
