package dev.natsio.beam.testing;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Every process the harness starts, so that a JVM that dies early still stops them.
 *
 * <p>Tests stop their servers in {@code close()}; this registry is the safety net behind that: a
 * shutdown hook kills whatever is still registered, so no nats-server outlives the test JVM even
 * when a test times out or the build is interrupted.
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
}
