package dev.natsio.integration.bench;

import com.sun.management.GarbageCollectionNotificationInfo;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.lang.management.MemoryUsage;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import javax.management.NotificationEmitter;
import javax.management.openmbean.CompositeData;

/**
 * Drains a backlog with NatsIO on Flink streaming in a JVM of its own, and reports its memory: a
 * fresh process per backlog size, so one drain's heap and resident set cannot colour the other's.
 *
 * <p>The figures: the retained heap after a full GC taken once the backlog is drained, with the
 * job still running (what the pipeline holds on to: this is what would grow if the reader buffered
 * the backlog); the largest heap in use after any GC during the drain; the peak resident set
 * (VmHWM), which includes the JVM, Flink's network buffers and jnats's socket buffers. The parent
 * starts this JVM with a fixed, pre-touched heap, so the resident set beyond the heap (code,
 * metaspace, thread stacks, direct buffers: what a leak outside the heap would grow) is the peak
 * minus the heap size.
 *
 * <p>Arguments: server URL, stream, start sequence, messages to drain, checkpoint interval ms,
 * timeout ms. Prints one line starting with {@value #RESULT_PREFIX}.
 */
public final class MemoryProbe {
  static final String RESULT_PREFIX = "MEMORY-RESULT ";

  private MemoryProbe() {}

  public static void main(String[] args) {
    try {
      drain(args);
    } catch (Throwable e) {
      e.printStackTrace();
      System.exit(1); // Flink's non-daemon threads would keep a failed probe alive.
    }
    // Flink and jnats leave non-daemon threads behind; this process has said all it has to say.
    System.exit(0);
  }

  private static void drain(String[] args) throws Exception {
    String url = args[0];
    String stream = args[1];
    long startSequence = Long.parseLong(args[2]);
    long count = Long.parseLong(args[3]);
    long checkpointMillis = Long.parseLong(args[4]);
    long timeoutMillis = Long.parseLong(args[5]);

    AtomicLong maxHeapAfterGc = new AtomicLong();
    listenToCollections(maxHeapAfterGc);
    AtomicLong maxRss = new AtomicLong();
    Thread sampler = new Thread(() -> {
      while (!Thread.currentThread().isInterrupted()) {
        maxRss.accumulateAndGet(SystemInfo.residentBytes(), Math::max);
        try {
          Thread.sleep(50);
        } catch (InterruptedException e) {
          return;
        }
      }
    }, "rss-sampler");
    sampler.setDaemon(true);
    sampler.start();

    long[] retained = new long[1];
    Cases.Timed drained = Cases.flinkStreamingDrain(url, stream, 1, startSequence, count, checkpointMillis, timeoutMillis, Cases.DrainTuning.DEFAULTS, () -> {
      System.gc();
      retained[0] = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    });
    sampler.interrupt();
    System.out.println(RESULT_PREFIX
        + "rate=" + drained.messagesPerSecond
        + " wall=" + drained.wallSeconds
        + " retainedHeapMb=" + mb(retained[0])
        + " maxHeapAfterGcMb=" + mb(maxHeapAfterGc.get())
        + " peakRssMb=" + mb(Math.max(maxRss.get(), SystemInfo.peakResidentBytes())));
    System.out.flush();
  }

  /** Keeps the largest heap in use right after any collection. */
  private static void listenToCollections(AtomicLong maxHeapAfterGc) {
    List<String> heapPools = new ArrayList<>();
    for (MemoryPoolMXBean pool : ManagementFactory.getMemoryPoolMXBeans()) {
      if (pool.getType() == MemoryType.HEAP) {
        heapPools.add(pool.getName());
      }
    }
    for (GarbageCollectorMXBean collector : ManagementFactory.getGarbageCollectorMXBeans()) {
      ((NotificationEmitter) collector).addNotificationListener((notification, handback) -> {
        if (!notification.getType().equals(GarbageCollectionNotificationInfo.GARBAGE_COLLECTION_NOTIFICATION)) {
          return;
        }
        GarbageCollectionNotificationInfo info = GarbageCollectionNotificationInfo.from((CompositeData) notification.getUserData());
        long used = 0;
        for (Map.Entry<String, MemoryUsage> pool : info.getGcInfo().getMemoryUsageAfterGc().entrySet()) {
          if (heapPools.contains(pool.getKey())) {
            used += pool.getValue().getUsed();
          }
        }
        maxHeapAfterGc.accumulateAndGet(used, Math::max);
      }, null, null);
    }
  }

  private static double mb(long bytes) {
    return bytes / (1024.0 * 1024.0);
  }
}
