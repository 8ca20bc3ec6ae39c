package dev.natsio.beam.testing;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * Every process the harness starts, so that a JVM that dies early still stops them.
 *
 * <p>Tests stop their servers in {@code close()}; this registry is the safety net behind that: a
 * shutdown hook kills whatever is still registered, so no nats-server (or Flink JVM) outlives the test JVM even
 * when a test times out or the build is interrupted. The Flink JVMs of a {@link FlinkTestCluster}
 * are registered here too.
 */
final class ManagedProcesses {
  private static final Set<Process> LIVE = ConcurrentHashMap.newKeySet();

  static {
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  for (Process process : LIVE) {
                    process.destroyForcibly();
                  }
                },
                "natsio-test-process-reaper"));
  }

  private ManagedProcesses() {}

  static void register(Process process) {
    LIVE.add(process);
  }

  static void unregister(Process process) {
    LIVE.remove(process);
  }

  /** Stops a process gracefully (SIGTERM), forcibly after 15 s, and unregisters it. */
  static void stop(Process process) {
    process.destroy();
    try {
      if (!process.waitFor(15, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      process.destroyForcibly();
    }
    unregister(process);
  }

  /** Kills a process with SIGKILL, as a crash would, waits for it to end and unregisters it. */
  static void kill(Process process) {
    process.destroyForcibly();
    try {
      process.waitFor(10, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    unregister(process);
  }
}
