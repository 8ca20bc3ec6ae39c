package dev.natsio.integration.bench;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.notNullValue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.Test;

/**
 * Runs the benchmark harness at its smoke size ({@code scripts/bench.sh --quick}) so that every
 * build checks it still works: each case produces its row with a positive figure, and the table
 * and chart are written. It asserts nothing about speed: on a shared 2-core machine that would be
 * a flaky test, and the figures at this size mean nothing anyway.
 */
public class BenchmarkSmokeTest {

  @Test
  public void quickRunProducesARowForEveryCase() throws Exception {
    Benchmarks.Config config = Benchmarks.Config.quick();
    config.markdownOut = Path.of("target", "bench", "smoke.md");
    config.chartOut = Path.of("target", "bench", "smoke.png");
    Files.deleteIfExists(config.markdownOut);
    Files.deleteIfExists(config.chartOut);

    Benchmarks.Report report = Benchmarks.run(config, System.out);

    int window = Cases.defaultMaxInFlight();
    List<String> missing = new ArrayList<>();
    for (int payload : config.payloads) {
      for (String name : List.of(Benchmarks.RAW_READ, Benchmarks.FLINK_P1, Benchmarks.FLINK_P2, Benchmarks.RAW_READ_BACKFILL, Benchmarks.FLINK_P2_BACKFILL,
          Benchmarks.DRAIN, Benchmarks.DRAIN_P2, Benchmarks.DRAIN_NO_METRICS, Benchmarks.DRAIN_SDF,
          Benchmarks.DIRECT, Benchmarks.RAW_PARTITIONED_READ, Benchmarks.PARTITIONED_DRAIN_P1, Benchmarks.PARTITIONED_DRAIN_P2)) {
        check(report.find(Result.Group.READ, name, payload, "throughput"), "read " + name + " " + payload, missing);
      }
      for (String name : List.of(Benchmarks.rawWrite(window), Benchmarks.FLINK_WRITE)) {
        check(report.find(Result.Group.WRITE, name, payload, "throughput"), "write " + name + " " + payload, missing);
      }
    }
    for (String name : List.of(Benchmarks.RAW_KV_SNAPSHOT, Benchmarks.KV_SNAPSHOT, Benchmarks.RAW_KV_SNAPSHOT_HISTORY,
        Benchmarks.KV_SNAPSHOT_HISTORY)) {
      check(report.find(Result.Group.READ, name, Benchmarks.KV_PAYLOAD, "throughput"), "key/value " + name, missing);
    }
    for (String name : List.of(Benchmarks.RAW_KV_PUT, Benchmarks.KV_PUT)) {
      check(report.find(Result.Group.WRITE, name, Benchmarks.KV_PAYLOAD, "throughput"), "key/value " + name, missing);
    }
    for (String name : List.of(Benchmarks.RAW_LATENCY, Benchmarks.FLINK_LATENCY)) {
      for (String metric : List.of("latency p50", "latency p99")) {
        check(report.find(Result.Group.LATENCY, name, config.latencyPayload, metric), name + " " + metric, missing);
      }
    }
    for (long backlog : config.memoryBacklogs) {
      for (String metric : List.of("throughput", Benchmarks.RETAINED_HEAP, "max heap after any GC", "peak RSS",
          Benchmarks.RSS_BEYOND_HEAP)) {
        check(report.memory(backlog, metric), "memory " + backlog + " " + metric, missing);
      }
    }
    assertThat("cases without a positive figure", missing, empty());
    assertThat(Files.size(config.markdownOut), greaterThan(0L));
    assertThat(Files.size(config.chartOut), greaterThan(0L));
  }

  private static void check(Result row, String what, List<String> missing) {
    if (row == null || row.values.isEmpty() || !(row.median() > 0)) {
      missing.add(what + (row == null ? " (no row)" : " " + row.values));
    }
  }
}
