package dev.natsio.integration.bench;

import dev.natsio.beam.InMemoryBatches;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * NatsIO against raw jnats, on one nats-server, the same data and the same run: {@code
 * scripts/bench.sh [--quick]} runs this class. Prints the machine, then each case as it finishes,
 * then a table of medians, spreads and ratios against the baseline; writes that table as Markdown
 * and a chart as PNG.
 *
 * <p>Why it is built the way it is:
 *
 * <ul>
 *   <li>The baseline runs in the same repetition as the NatsIO cases it is compared with, right
 *       before them, and ratios are taken per repetition: the machine has 2 cores shared with
 *       other builds, so load drifts more between minutes than between neighbouring cases.
 *   <li>Throughput is measured between the first and the last message at the output (reads) or
 *       as the server stored them (writes): job startup (seconds on Flink) would otherwise
 *       dominate a 1M-message case and say nothing about the connector. Wall time is shown beside.
 *   <li>A warm-up round (full mode) runs every throughput case once on a smaller count first, so
 *       JIT compilation and class loading are not charged to the first repetition.
 *   <li>The load average is printed with every case, and the table shows its range per row.
 * </ul>
 */
public final class Benchmarks {
  private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("HH:mm:ss");

  private Benchmarks() {}

  /** What to run, and how big. */
  static final class Config {
    enum Part { READ, WRITE, LATENCY, MEMORY, KV }

    boolean quick;
    long messages;
    long warmupMessages;
    long directMessages;
    int repetitions;
    int[] payloads = {128, 1024};
    int latencyRate = 10_000;
    int latencyPayload = 128;
    int latencyWarmupSeconds;
    int latencyWindowSeconds;
    int latencyWindows;
    long[] memoryBacklogs;
    /** Keys per Key/Value case (snapshot read and puts); the put baseline makes one round trip per key. */
    long kvKeys;
    long checkpointMillis = 5_000;
    Set<Part> parts = EnumSet.allOf(Part.class);
    /** When set, only throughput cases whose name contains one of these run, each with its own baseline run. */
    List<String> only = List.of();
    Path markdownOut;
    Path chartOut;

    /** The smoke size: checks that every case runs, says nothing about speed. */
    static Config quick() {
      Config c = new Config();
      c.quick = true;
      c.payloads = new int[] {128}; // Every case, at one size: the 1 KB runs the same code.
      c.messages = 20_000;
      c.warmupMessages = 0;
      c.directMessages = 5_000;
      c.repetitions = 1;
      c.latencyWarmupSeconds = 1;
      c.latencyWindowSeconds = 2;
      c.latencyWindows = 1;
      c.memoryBacklogs = new long[] {5_000, 20_000};
      c.kvKeys = 2_000;
      c.markdownOut = Path.of("target", "bench", "benchmarks-quick.md");
      c.chartOut = Path.of("target", "bench", "benchmarks-quick.png");
      return c;
    }

    /**
     * The full size, sized to finish in about 15 minutes on 2 cores. The Direct runner reads
     * fewer messages: it checkpoints a splittable DoFn every 100 outputs by design and would
     * spend minutes on a million.
     */
    static Config full() {
      Config c = new Config();
      c.messages = 1_000_000;
      c.warmupMessages = 100_000;
      c.directMessages = 100_000;
      c.repetitions = 3;
      c.latencyWarmupSeconds = 5;
      c.latencyWindowSeconds = 10;
      c.latencyWindows = 3;
      c.memoryBacklogs = new long[] {1_000_000, 5_000_000};
      c.kvKeys = 20_000;
      c.markdownOut = Path.of("target", "bench", "benchmarks.md");
      c.chartOut = Path.of("target", "bench", "benchmarks.png");
      return c;
    }
  }

  /** Everything a run found, for the table, the chart and the smoke test. */
  static final class Report {
    final Config config;
    final Map<String, Result> results = new LinkedHashMap<>();
    final List<String> header = new ArrayList<>();
    final List<String> notes = new ArrayList<>();
    String loadAtStart;
    String loadAtEnd;
    /** The benchmark's nats-server, whose CPU time each read row reports. */
    long serverPid;
    double minutes;

    Report(Config config) {
      this.config = config;
    }

    Result row(Result.Group group, String name, int payload, long messages, String metric, String unit, String baseline, String target) {
      // Memory rows differ by backlog size; other rows by case, payload and metric only.
      String size = group == Result.Group.MEMORY ? "|" + messages : "";
      return results.computeIfAbsent(group + "|" + name + "|" + payload + "|" + metric + size,
          k -> new Result(group, name, payload, messages, metric, unit, baseline, target));
    }

    Result find(Result.Group group, String name, int payload, String metric) {
      return results.get(group + "|" + name + "|" + payload + "|" + metric);
    }

    Result memory(long backlog, String metric) {
      return results.get(Result.Group.MEMORY + "|" + MEMORY + "|" + MEMORY_PAYLOAD + "|" + metric + "|" + backlog);
    }

    List<Result> rows() {
      return new ArrayList<>(results.values());
    }
  }

  public static void main(String[] args) throws Exception {
    List<String> arguments = List.of(args);
    // The mode first, so the options after it (or before it) adjust the right configuration.
    Config config = arguments.contains("--quick") ? Config.quick() : Config.full();
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--quick":
          break;
        case "--markdown":
          config.markdownOut = Path.of(args[++i]);
          break;
        case "--chart":
          config.chartOut = Path.of(args[++i]);
          break;
        case "--parts":
          config.parts = EnumSet.noneOf(Config.Part.class);
          for (String part : args[++i].split(",")) {
            config.parts.add(Config.Part.valueOf(part.trim().toUpperCase(Locale.ROOT)));
          }
          break;
        case "--repetitions":
          config.repetitions = Integer.parseInt(args[++i]);
          break;
        case "--natsio-batch":
          Cases.natsioBatch = Integer.parseInt(args[++i]);
          break;
        case "--only":
          config.only = List.of(args[++i].split(","));
          break;
        case "--messages":
          // A smaller run than the full size, warm-up included (e.g. on a loaded machine).
          config.messages = Long.parseLong(args[++i]);
          config.warmupMessages = config.quick ? 0 : Math.max(1, config.messages / 10);
          config.directMessages = Math.min(config.directMessages, config.messages);
          break;
        default:
          System.err.println("usage: Benchmarks [--quick] [--parts read,write,latency,memory,kv] [--repetitions n] [--only name,name] [--messages n] [--natsio-batch n] "
              + "[--markdown file.md] [--chart file.png]");
          System.exit(2);
      }
    }
    int status = 0;
    try {
      run(config, System.out);
    } catch (Throwable e) {
      e.printStackTrace();
      status = 1;
    }
    // Flink and jnats leave non-daemon threads; the shutdown hooks stop any nats-server left.
    System.exit(status);
  }

  static Report run(Config config, PrintStream out) throws Exception {
    Report report = new Report(config);
    long started = System.nanoTime();
    report.loadAtStart = SystemInfo.loadAverage();
    try (NatsTestServer server = NatsTestServer.jetStream().start(); Connection connection = server.connect()) {
      report.serverPid = server.pid();
      describeMachine(report, connection, out);
      int window = Cases.defaultMaxInFlight();
      if (config.parts.contains(Config.Part.READ) || config.parts.contains(Config.Part.WRITE)) {
        throughput(report, server, connection, window, out);
      }
      if (config.parts.contains(Config.Part.LATENCY)) {
        latency(report, server, connection, out);
      }
      if (config.parts.contains(Config.Part.MEMORY)) {
        memory(report, server, connection, out);
      }
      if (config.parts.contains(Config.Part.KV)) {
        keyValue(report, server, connection, out);
      }
    }
    report.loadAtEnd = SystemInfo.loadAverage();
    report.minutes = (System.nanoTime() - started) / 60e9;
    String table = Tables.text(report);
    out.println();
    out.println(table);
    out.printf("Load average (1, 5, 15 min) at start: %s; at end: %s. Took %.1f minutes.%n",
        report.loadAtStart, report.loadAtEnd, report.minutes);
    if (config.markdownOut != null) {
      Files.createDirectories(config.markdownOut.toAbsolutePath().getParent());
      Files.writeString(config.markdownOut, Tables.markdown(report), StandardCharsets.UTF_8);
      out.println("Markdown table: " + config.markdownOut.toAbsolutePath());
    }
    if (config.chartOut != null) {
      Files.createDirectories(config.chartOut.toAbsolutePath().getParent());
      Chart.write(report, config.chartOut);
      out.println("Chart: " + config.chartOut.toAbsolutePath());
    }
    return report;
  }

  private static void describeMachine(Report report, Connection connection, PrintStream out) {
    Config c = report.config;
    report.header.add(String.format("mode: %s", c.quick ? "quick (smoke size: checks the harness, not the numbers)" : "full"));
    report.header.add(String.format("machine: %d cores (%s), %.0f GiB memory", SystemInfo.cores(), SystemInfo.cpuModel(),
        SystemInfo.totalMemoryBytes() / (1024.0 * 1024 * 1024)));
    report.header.add(String.format("java %s, max heap %d MiB; nats-server %s (file store, loopback)",
        System.getProperty("java.version"), Runtime.getRuntime().maxMemory() / (1024 * 1024),
        connection.getServerInfo().getVersion()));
    report.header.add(String.format("sizes: %,d messages per read/write case (Direct runner: %,d), warm-up %,d, %d repetition(s); "
            + "latency at %,d msgs/s, %d s warm-up + %d x %d s windows; memory backlogs %s",
        c.messages, c.directMessages, c.warmupMessages, c.repetitions, c.latencyRate, c.latencyWarmupSeconds,
        c.latencyWindows, c.latencyWindowSeconds, java.util.Arrays.toString(c.memoryBacklogs)));
    if (Cases.natsioBatch > 0) {
      report.header.add("NatsIO reads with withBatchSize(" + Cases.natsioBatch + ") (experiment; the baseline pulls " + Cases.READ_BATCH + ")");
    }
    report.header.add("load average at start (1, 5, 15 min): " + report.loadAtStart);
    for (String line : report.header) {
      out.println(line);
    }
  }

  // ---- Throughput ------------------------------------------------------------------------------

  static final String RAW_READ = "raw jnats ordered consumer (batch " + Cases.READ_BATCH + ")";
  static final String FLINK_P1 = "NatsIO.read() bounded, Flink batch, parallelism 1";
  static final String FLINK_P2 = "NatsIO.read() bounded, Flink batch, parallelism 2";
  static final String DIRECT = "NatsIO.read() bounded, Direct runner";
  static final String RAW_READ_BACKFILL = "raw jnats ordered consumer (batch " + Cases.READ_BATCH + "), backfill of 2/5 of the stream";
  static final String FLINK_P2_BACKFILL = "NatsIO.read() bounded, Flink batch, parallelism 2, backfill of 2/5 of the stream";
  static final String DRAIN = "NatsIO.read() unbounded, backlog drain, Flink streaming, runner defaults, parallelism 1";
  static final String DRAIN_P2 = "NatsIO.read() unbounded, backlog drain, Flink streaming, runner defaults, parallelism 2";
  static final String DRAIN_NO_METRICS = "NatsIO.read() unbounded, backlog drain, Flink streaming, fasterCopy, disableMetrics";
  static final String DRAIN_SDF = "NatsIO.read() unbounded, backlog drain, Flink streaming, splittable DoFn (use_sdf_read)";
  static final String FLINK_WRITE = "NatsIO.write() JetStream, Flink batch, parallelism 1";
  /** Partitions of the partitioned-read cases' stream. */
  static final int PARTITIONS = 4;
  static final String RAW_PARTITIONED_READ =
      "raw jnats, " + PARTITIONS + " ordered consumers (one per partition, own thread, batch " + Cases.READ_BATCH + ")";
  static final String RUNNER_FLOOR =
      "runner floor: in-memory batches of " + InMemoryBatches.MESSAGES_PER_BATCH + " → Unbatch, no NATS, Flink streaming, runner defaults, parallelism 1";
  static final String RUNNER_FLOOR_NO_METRICS =
      "runner floor: in-memory batches of " + InMemoryBatches.MESSAGES_PER_BATCH + " → Unbatch, no NATS, Flink streaming, fasterCopy, disableMetrics";
  static final String PARTITIONED_DRAIN_P1 = "NatsIO.read() " + PARTITIONS + " partitions, unbounded, backlog drain, Flink streaming, fasterCopy, disableMetrics, parallelism 1";
  static final String PARTITIONED_DRAIN_P2 = "NatsIO.read() " + PARTITIONS + " partitions, unbounded, backlog drain, Flink streaming, fasterCopy, disableMetrics, parallelism 2";

  static String rawWrite(int window) {
    return "raw jnats publishAsync (window " + window + ")";
  }

  private static void throughput(Report report, NatsTestServer server, Connection connection, int window, PrintStream out)
      throws Exception {
    Config c = report.config;
    boolean reads = c.parts.contains(Config.Part.READ);
    boolean writes = c.parts.contains(Config.Part.WRITE);
    if (reads) {
      for (int payload : c.payloads) {
        long start = System.nanoTime();
        Cases.fill(connection, readStream(payload), readStream(payload) + ".x", c.messages, payload);
        out.printf("%s filled %s: %,d x %d B in %.1f s%n", now(), readStream(payload), c.messages, payload, (System.nanoTime() - start) / 1e9);
        start = System.nanoTime();
        Cases.fillPartitioned(connection, partitionedStream(payload), PARTITIONS, c.messages, payload);
        out.printf("%s filled %s: %,d x %d B over %d partitions in %.1f s%n", now(), partitionedStream(payload), c.messages, payload,
            PARTITIONS, (System.nanoTime() - start) / 1e9);
      }
    }
    if (c.warmupMessages > 0) {
      out.printf("%s warm-up: every throughput case once on %,d messages (not recorded)%n", now(), c.warmupMessages);
      for (int payload : c.payloads) {
        throughputRound(report, server, connection, window, payload, c.warmupMessages, Math.min(c.warmupMessages, c.directMessages), null, out);
      }
    }
    for (int rep = 1; rep <= c.repetitions; rep++) {
      for (int payload : c.payloads) {
        throughputRound(report, server, connection, window, payload, c.messages, c.directMessages, rep, out);
      }
    }
    if (reads) {
      for (int payload : c.payloads) {
        connection.jetStreamManagement().deleteStream(readStream(payload)); // Frees the disk for the memory case.
        connection.jetStreamManagement().deleteStream(partitionedStream(payload));
      }
    }
  }

  /** One repetition of every read and write case for one payload size; records nothing when {@code rep} is null. */
  private static void throughputRound(
      Report report, NatsTestServer server, Connection connection, int window, int payload, long messages, long directMessages,
      Integer rep, PrintStream out) throws Exception {
    Config c = report.config;
    String url = server.url();
    String stream = readStream(payload);
    if (c.parts.contains(Config.Part.READ)) {
      long timeout = Math.max(120_000, messages / 5);
      long backfill = messages * 2 / 5;
      TimedCase raw = () -> Cases.rawRead(connection, stream, messages);
      pair(report, rep, out, Result.Group.READ, RAW_READ, raw, FLINK_P1, payload, messages, "≥ 0.8×",
          () -> Cases.flinkBatchRead(url, stream, messages, 1));
      pair(report, rep, out, Result.Group.READ, RAW_READ, raw, FLINK_P2, payload, messages, "≥ 1.0×",
          () -> Cases.flinkBatchRead(url, stream, messages, 2));
      pair(report, rep, out, Result.Group.READ, RAW_READ_BACKFILL, () -> Cases.rawRead(connection, stream, backfill),
          FLINK_P2_BACKFILL, payload, backfill, "≥ 1.0×", () -> Cases.flinkBatchRead(url, stream, backfill, 2));
      pair(report, rep, out, Result.Group.READ, RAW_READ, raw, DRAIN, payload, messages, "≥ 0.8×",
          () -> Cases.flinkStreamingDrain(url, stream, 1, 1, messages, c.checkpointMillis, timeout, Cases.DrainTuning.DEFAULTS));
      pair(report, rep, out, Result.Group.READ, RAW_READ, raw, DRAIN_P2, payload, messages, "≥ 0.8×",
          () -> Cases.flinkStreamingDrain(url, stream, 2, 1, messages, c.checkpointMillis, timeout, Cases.DrainTuning.DEFAULTS));
      // What the runner and the batch plumbing cost without NATS: the floor under the two rows above.
      unpaired(report, rep, out, Result.Group.READ, RUNNER_FLOOR, payload, messages,
          () -> Cases.flinkStreamingFloor(payload, messages, c.checkpointMillis, timeout, Cases.DrainTuning.DEFAULTS));
      // The runner's own knobs beside the defaults, and the other form of the read: see docs/benchmarks.md.
      pair(report, rep, out, Result.Group.READ, RAW_READ, raw, DRAIN_NO_METRICS, payload, messages, "≥ 0.8×",
          () -> Cases.flinkStreamingDrain(url, stream, 1, 1, messages, c.checkpointMillis, timeout, Cases.DrainTuning.FASTER_COPY_NO_METRICS));
      unpaired(report, rep, out, Result.Group.READ, RUNNER_FLOOR_NO_METRICS, payload, messages,
          () -> Cases.flinkStreamingFloor(payload, messages, c.checkpointMillis, timeout, Cases.DrainTuning.FASTER_COPY_NO_METRICS));
      pair(report, rep, out, Result.Group.READ, RAW_READ, raw, DRAIN_SDF, payload, messages, "≥ 0.8×",
          () -> Cases.flinkStreamingDrain(url, stream, 1, 1, messages, c.checkpointMillis, timeout, Cases.DrainTuning.SPLITTABLE_DOFN));
      pair(report, rep, out, Result.Group.READ, RAW_READ, raw, DIRECT, payload, directMessages, "",
          () -> Cases.directRead(url, stream, directMessages));
      // A partitioned stream: its baseline is one consumer per partition.
      String partitioned = partitionedStream(payload);
      for (int parallelism : new int[] {1, 2}) {
        pair(report, rep, out, Result.Group.READ, RAW_PARTITIONED_READ, () -> Cases.rawPartitionedRead(connection, partitioned, PARTITIONS, messages),
            parallelism == 1 ? PARTITIONED_DRAIN_P1 : PARTITIONED_DRAIN_P2, payload, messages, "",
            () -> Cases.flinkPartitionedDrain(url, partitioned, PARTITIONS, parallelism, messages, c.checkpointMillis, timeout));
      }
    }
    if (c.parts.contains(Config.Part.WRITE)) {
      String writeStream = "write" + payload;
      String subject = writeStream + ".x";
      pair(report, rep, out, Result.Group.WRITE, rawWrite(window),
          () -> Cases.rawWrite(connection, writeStream, subject, messages, payload, window),
          FLINK_WRITE, payload, messages, "≥ 0.8×", () -> Cases.flinkWrite(connection, url, writeStream, subject, messages, payload, 1));
      connection.jetStreamManagement().deleteStream(writeStream);
    }
  }

  interface TimedCase {
    Cases.Timed run() throws Exception;
  }

  /**
   * A NatsIO case right after its own run of the baseline, so that each ratio compares two runs
   * seconds apart (raw, NatsIO, raw, NatsIO, ... over the cases and repetitions); the row's ratio
   * is the median of these per-pair ratios.
   */
  private static void pair(
      Report report, Integer rep, PrintStream out, Result.Group group, String baselineName, TimedCase baseline,
      String name, int payload, long messages, String target, TimedCase body) throws Exception {
    if (!report.config.only.isEmpty() && report.config.only.stream().noneMatch(name::contains)) {
      return;
    }
    double base = record(report, rep, out, group, baselineName, payload, messages, null, null, Double.NaN, baseline);
    record(report, rep, out, group, name, payload, messages, baselineName, target, base, body);
  }

  /** A case with no baseline of its own, run and recorded as paired ones are. */
  private static void unpaired(
      Report report, Integer rep, PrintStream out, Result.Group group, String name, int payload, long messages, TimedCase body)
      throws Exception {
    if (!report.config.only.isEmpty() && report.config.only.stream().noneMatch(name::contains)) {
      return;
    }
    record(report, rep, out, group, name, payload, messages, null, "", Double.NaN, body);
  }

  /** Runs a case, prints it, and records it (with its ratio to {@code baseline}) unless this is warm-up. */
  private static double record(
      Report report, Integer rep, PrintStream out, Result.Group group, String name, int payload, long messages,
      String baselineName, String target, double baseline, TimedCase body) throws Exception {
    double load = SystemInfo.loadAverage1m();
    Cases.Timed timed;
    MachineCpu.PerMessage machine = MachineCpu.PerMessage.UNKNOWN;
    try (MachineCpu sampler = MachineCpu.start(report.serverPid)) {
      timed = body.run();
      if (sampler != null && timed.firstNanos != 0) {
        machine = sampler.between(timed.firstNanos, timed.lastNanos, timed.messagesPerSecond * (timed.lastNanos - timed.firstNanos) / 1e9);
      }
    }
    String ratio = Double.isNaN(baseline) ? "" : String.format("  %.2f× baseline", timed.messagesPerSecond / baseline);
    String cpu = (Double.isNaN(timed.cpuMicrosPerMessage) ? "" : String.format("  %.2f µs CPU/msg on the reading thread", timed.cpuMicrosPerMessage))
        + (Double.isNaN(machine.machineMicros) ? "" : String.format(", %.2f on the machine (server %.2f)", machine.machineMicros, machine.serverMicros));
    out.printf("%s %-9s %-60s %5d B %,9d msgs: %,10.0f msgs/s (job %.1f s)%s%s  load %s%n", now(),
        rep == null ? "warm-up" : "rep " + rep, name, payload, messages, timed.messagesPerSecond, timed.wallSeconds, ratio, cpu,
        SystemInfo.loadAverage());
    if (rep != null) {
      Result row = report.row(group, name, payload, messages, "throughput", "msgs/s", baselineName, target);
      row.values.add(timed.messagesPerSecond);
      row.wallSeconds.add(timed.wallSeconds);
      row.loads.add(load);
      if (!Double.isNaN(timed.cpuMicrosPerMessage)) {
        row.cpuMicros.add(timed.cpuMicrosPerMessage);
      }
      if (!Double.isNaN(machine.machineMicros)) {
        row.machineMicros.add(machine.machineMicros);
        row.serverMicros.add(machine.serverMicros);
      }
      if (!Double.isNaN(baseline)) {
        row.ratios.add(timed.messagesPerSecond / baseline);
      }
    }
    return timed.messagesPerSecond;
  }

  private static String readStream(int payload) {
    return "read" + payload;
  }

  private static String partitionedStream(int payload) {
    return "parts" + payload;
  }

  // ---- Key/Value buckets -----------------------------------------------------------------------

  static final String RAW_KV_SNAPSHOT = "raw jnats KeyValue.watchAll (latest per key)";
  static final String KV_SNAPSHOT = "NatsIO.readKeyValue() snapshot, bucket history 1, Flink batch, parallelism 1";
  static final String RAW_KV_SNAPSHOT_HISTORY = "raw jnats KeyValue.watchAll (latest per key), bucket history 3";
  static final String KV_SNAPSHOT_HISTORY = "NatsIO.readKeyValue() snapshot, bucket history 3 (a lookup per revision), Flink batch, parallelism 1";
  static final String RAW_KV_PUT = "raw jnats KeyValue.put (synchronous: the API has no async put)";
  static final String KV_PUT = "NatsIO.writeKeyValue(), Flink batch, parallelism 1";
  static final int KV_PAYLOAD = 128;

  /**
   * Snapshot reads and puts against jnats's own KeyValue API, alternating baseline and NatsIO in
   * each repetition after a warm-up pair (full mode), as the stream cases do. The history-3 bucket
   * holds 3 revisions of each key, so the latest-values read makes its lookup per revision read.
   */
  private static void keyValue(Report report, NatsTestServer server, Connection connection, PrintStream out) throws Exception {
    Config c = report.config;
    String url = server.url();
    long keys = c.kvKeys;
    KeyValueCases.fill(connection, "bench_kv1", 1, keys, 1, KV_PAYLOAD);
    KeyValueCases.fill(connection, "bench_kv3", 3, keys, 3, KV_PAYLOAD);
    out.printf("%s filled buckets bench_kv1 (%,d keys) and bench_kv3 (%,d keys x 3 revisions)%n", now(), keys, keys);
    for (int rep = c.quick ? 1 : 0; rep <= c.repetitions; rep++) {
      Integer recorded = rep == 0 ? null : rep; // rep 0: the warm-up pair
      long putKeys = rep == 0 ? Math.max(2, keys / 10) : keys;
      pair(report, recorded, out, Result.Group.READ, RAW_KV_SNAPSHOT, () -> KeyValueCases.rawSnapshot(connection, "bench_kv1", keys),
          KV_SNAPSHOT, KV_PAYLOAD, keys, "", () -> KeyValueCases.flinkSnapshot(url, "bench_kv1", keys, 1));
      pair(report, recorded, out, Result.Group.READ, RAW_KV_SNAPSHOT_HISTORY, () -> KeyValueCases.rawSnapshot(connection, "bench_kv3", keys),
          KV_SNAPSHOT_HISTORY, KV_PAYLOAD, keys, "", () -> KeyValueCases.flinkSnapshot(url, "bench_kv3", keys, 1));
      pair(report, recorded, out, Result.Group.WRITE, RAW_KV_PUT, () -> KeyValueCases.rawPuts(connection, "bench_kvput", putKeys, KV_PAYLOAD),
          KV_PUT, KV_PAYLOAD, putKeys, "", () -> KeyValueCases.flinkPuts(connection, url, "bench_kvput", putKeys, KV_PAYLOAD, 1));
    }
    // bench_kvput exists only if a put case ran (--only may have left them out).
    List<String> existing = connection.keyValueManagement().getBucketNames();
    for (String bucket : List.of("bench_kv1", "bench_kv3", "bench_kvput")) {
      if (existing.contains(bucket)) {
        connection.keyValueManagement().delete(bucket);
      }
    }
  }

  // ---- Latency ---------------------------------------------------------------------------------

  static final String RAW_LATENCY = "raw jnats ordered consumer";
  static final String FLINK_LATENCY = "NatsIO.read() unbounded, Flink streaming";

  private static void latency(Report report, NatsTestServer server, Connection connection, PrintStream out) throws Exception {
    Config c = report.config;
    // The baseline first: it shows what the server and jnats alone cost at this rate on this machine.
    {
      String stream = "latencyraw";
      Cases.createFileStream(connection, stream, stream + ".x");
      String id = "latency-" + UUID.randomUUID();
      Cases.RawLatencyReader reader = new Cases.RawLatencyReader(connection, stream, id);
      Thread thread = new Thread(reader, "raw-latency-reader");
      thread.start();
      try {
        measureLatency(report, connection, stream, id, RAW_LATENCY, "", out, () -> reader.failure);
      } finally {
        reader.stop.set(true);
        thread.join(10_000);
        Probes.forget(id);
      }
    }
    {
      String stream = "latencynatsio";
      Cases.createFileStream(connection, stream, stream + ".x");
      String id = "latency-" + UUID.randomUUID();
      org.apache.beam.sdk.Pipeline pipeline = dev.natsio.integration.FlinkPipelines.streaming(1, c.checkpointMillis);
      pipeline
          .apply(dev.natsio.beam.NatsIO.read().withServers(server.url()).withStream(stream))
          .apply(Probes.latencyInto(id));
      org.apache.beam.sdk.PipelineResult result = pipeline.run();
      try {
        measureLatency(report, connection, stream, id, FLINK_LATENCY, "< 250 ms", out, () -> null);
      } finally {
        Cases.cancel(result);
        Probes.forget(id);
      }
    }
  }

  interface FailureSource {
    Exception failure();
  }

  private static void measureLatency(
      Report report, Connection connection, String stream, String probeId, String name, String target, PrintStream out,
      FailureSource reader) throws Exception {
    Config c = report.config;
    String subject = stream + ".x";
    Probes.Latency probe = Probes.latency(probeId);
    // Wait until the reader is up (a Flink job takes seconds to start) with a trickle of messages.
    long deadline = System.currentTimeMillis() + 180_000;
    while (probe.size() == 0) {
      if (System.currentTimeMillis() > deadline || reader.failure() != null) {
        throw new IllegalStateException("the " + name + " latency reader never saw a message", reader.failure());
      }
      connection.jetStream().publish(subject, Probes.timestampedPayload(System.nanoTime(), c.latencyPayload));
      Thread.sleep(200);
    }
    Cases.SteadyPublisher publisher = new Cases.SteadyPublisher(connection, subject, c.latencyRate, c.latencyPayload);
    Thread thread = new Thread(publisher, "steady-publisher");
    thread.start();
    try {
      Thread.sleep(c.latencyWarmupSeconds * 1_000L);
      probe.drain(); // Warm-up: not recorded.
      for (int window = 1; window <= c.latencyWindows; window++) {
        double load = SystemInfo.loadAverage1m();
        long before = publisher.published.get();
        Thread.sleep(c.latencyWindowSeconds * 1_000L);
        if (window == c.latencyWindows) {
          publisher.stop.set(true);
          thread.join(30_000);
          Thread.sleep(2_000); // The last messages' bundles finish within a second on Flink.
        }
        long published = publisher.published.get() - before;
        long[] latencies = probe.drain();
        if (publisher.failure != null || reader.failure() != null) {
          throw new IllegalStateException("latency case " + name + " failed",
              publisher.failure != null ? publisher.failure : reader.failure());
        }
        double p50 = Stats.percentile(latencies, 50) / 1e6;
        double p99 = Stats.percentile(latencies, 99) / 1e6;
        double max = Stats.percentile(latencies, 100) / 1e6;
        out.printf("%s window %d  %-60s %,d msgs published, %,d timed: p50 %.1f ms, p99 %.1f ms, max %.1f ms  load %s%n",
            now(), window, name, published, latencies.length, p50, p99, max, SystemInfo.loadAverage());
        if (latencies.length == 0) {
          throw new IllegalStateException("latency case " + name + " timed no message in window " + window);
        }
        Result p50Row = report.row(Result.Group.LATENCY, name, c.latencyPayload, 0, "latency p50", "ms", null, "");
        Result p99Row = report.row(Result.Group.LATENCY, name, c.latencyPayload, 0, "latency p99", "ms", null, target);
        p50Row.messages += latencies.length;
        p99Row.messages += latencies.length;
        p50Row.values.add(p50);
        p99Row.values.add(p99);
        p50Row.loads.add(load);
        p99Row.loads.add(load);
      }
      out.printf("%s %s: publisher held %,.0f msgs/s on average (target %,d)%n", now(), name, publisher.achievedRate(), c.latencyRate);
      report.notes.add(String.format("Latency, %s: the publisher held %,.0f msgs/s on average (target %,d).",
          name, publisher.achievedRate(), c.latencyRate));
    } finally {
      publisher.stop.set(true);
      thread.join(30_000);
    }
  }

  // ---- Memory ----------------------------------------------------------------------------------

  static final int MEMORY_HEAP_MB = 1024;
  static final String MEMORY = "NatsIO.read() unbounded, backlog drain, Flink streaming, own JVM, 1 GiB heap";
  private static final String MEMORY_STREAM = "backlog";
  static final int MEMORY_PAYLOAD = 128;
  /** The two memory figures the "flat in backlog" target is judged on; the others explain them. */
  static final String RETAINED_HEAP = "retained heap after full GC";
  static final String RSS_BEYOND_HEAP = "peak RSS beyond the heap";

  private static void memory(Report report, NatsTestServer server, Connection connection, PrintStream out) throws Exception {
    Config c = report.config;
    long largest = java.util.Arrays.stream(c.memoryBacklogs).max().getAsLong();
    long start = System.nanoTime();
    Cases.fill(connection, MEMORY_STREAM, MEMORY_STREAM + ".x", largest, MEMORY_PAYLOAD);
    out.printf("%s filled %s: %,d x %d B in %.1f s%n", now(), MEMORY_STREAM, largest, MEMORY_PAYLOAD, (System.nanoTime() - start) / 1e9);
    for (long backlog : c.memoryBacklogs) {
      // The last `backlog` messages of one stream: the drains differ only in how much is behind.
      long startSequence = largest - backlog + 1;
      double load = SystemInfo.loadAverage1m();
      Map<String, Double> figures = drainInOwnJvm(server.url(), startSequence, backlog, c.checkpointMillis);
      out.printf("%s memory    drain of %,d: %,.0f msgs/s; retained heap %.0f MB, max heap after GC %.0f MB, peak RSS %.0f MB "
              + "(%.0f MB beyond the %d MB heap)  load %s%n",
          now(), backlog, figures.get("rate"), figures.get("retainedHeapMb"), figures.get("maxHeapAfterGcMb"),
          figures.get("peakRssMb"), figures.get("peakRssMb") - MEMORY_HEAP_MB, MEMORY_HEAP_MB, SystemInfo.loadAverage());
      addMemory(report, backlog, RETAINED_HEAP, figures.get("retainedHeapMb"), load);
      addMemory(report, backlog, "max heap after any GC", figures.get("maxHeapAfterGcMb"), load);
      addMemory(report, backlog, "peak RSS", figures.get("peakRssMb"), load);
      addMemory(report, backlog, RSS_BEYOND_HEAP, figures.get("peakRssMb") - MEMORY_HEAP_MB, load);
      Result rate = report.row(Result.Group.MEMORY, MEMORY, MEMORY_PAYLOAD, backlog, "throughput", "msgs/s", null, "");
      rate.values.add(figures.get("rate"));
      rate.wallSeconds.add(figures.get("wall"));
      rate.loads.add(load);
    }
    connection.jetStreamManagement().deleteStream(MEMORY_STREAM);
  }

  private static void addMemory(Report report, long backlog, String metric, double mb, double load) {
    boolean judged = metric.equals(RETAINED_HEAP) || metric.equals(RSS_BEYOND_HEAP);
    Result row = report.row(Result.Group.MEMORY, MEMORY, MEMORY_PAYLOAD, backlog, metric, "MB", null, judged ? "flat in backlog" : "");
    row.values.add(mb);
    row.loads.add(load);
  }

  private static final Pattern FIGURE = Pattern.compile("(\\w+)=([0-9.Ee+-]+)");

  /** Runs {@link MemoryProbe} in a fresh JVM on this JVM's class path and parses its figures. */
  private static Map<String, Double> drainInOwnJvm(String url, long startSequence, long backlog, long checkpointMillis) throws Exception {
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    // A fixed, pre-touched heap: all of it is resident from the start, so the resident set beyond
    // it is exactly what lives outside the heap, and G1's heap sizing cannot pass for growth.
    command.add("-Xms" + MEMORY_HEAP_MB + "m");
    command.add("-Xmx" + MEMORY_HEAP_MB + "m");
    command.add("-XX:+AlwaysPreTouch");
    for (String argument : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (argument.startsWith("--add-opens") || argument.startsWith("-Djava.io.tmpdir")) {
        command.add(argument); // Flink needs the same opened JDK packages as this JVM.
      }
    }
    command.add("-cp");
    command.add(System.getProperty("java.class.path"));
    command.add(MemoryProbe.class.getName());
    long timeout = Math.max(120_000, backlog / 5);
    for (Object arg : new Object[] {url, MEMORY_STREAM, startSequence, backlog, checkpointMillis, timeout}) {
      command.add(String.valueOf(arg));
    }
    Path log = Files.createTempFile("natsio-memory-probe-", ".log");
    Process process = new ProcessBuilder(command).redirectError(log.toFile()).start();
    // The probe stops itself on its own timeout; this watchdog is for a probe that hangs before that.
    Thread watchdog = new Thread(() -> {
      try {
        if (!process.waitFor(timeout + 60_000, TimeUnit.MILLISECONDS)) {
          process.destroyForcibly();
        }
      } catch (InterruptedException e) {
        process.destroyForcibly();
      }
    }, "memory-probe-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();
    try {
      String resultLine = null;
      try (BufferedReader reader = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
        for (String line = reader.readLine(); line != null; line = reader.readLine()) {
          if (line.startsWith(MemoryProbe.RESULT_PREFIX)) {
            resultLine = line;
          }
        }
      }
      if (!process.waitFor(60, TimeUnit.SECONDS) || process.exitValue() != 0 || resultLine == null) {
        throw new IllegalStateException("the memory probe for a backlog of " + backlog + " failed; its log:\n" + tail(log));
      }
      Map<String, Double> figures = new LinkedHashMap<>();
      Matcher matcher = FIGURE.matcher(resultLine);
      while (matcher.find()) {
        figures.put(matcher.group(1), Double.parseDouble(matcher.group(2)));
      }
      return figures;
    } finally {
      process.destroyForcibly();
      Files.deleteIfExists(log);
    }
  }

  private static String tail(Path log) {
    try {
      List<String> lines = Files.readAllLines(log);
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
    } catch (Exception e) {
      return "(unreadable: " + e + ")";
    }
  }

  static String now() {
    return LocalDateTime.now().format(TIME);
  }
}
