package dev.natsio.integration.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * CPU time of the whole machine and of the nats-server process while a case runs, from Linux's
 * {@code /proc}, so that a row can say how much CPU a message cost everywhere: the server, the
 * client library's threads, the runner's threads, the garbage collector.
 *
 * <h2>Why</h2>
 *
 * <p>On 2 cores the server, jnats and Flink share the machine, and a read's rate is bounded by the
 * CPU all of them need per message, not only by the reading thread's ({@code CPU µs/msg}). These
 * figures show where the difference to the baseline goes.
 *
 * <h2>How</h2>
 *
 * <p>A daemon thread reads the machine's busy and total ticks ({@code /proc/stat}) and the
 * server's user and system ticks ({@code /proc/PID/stat}) every {@link #PERIOD_MILLIS} ms. A case's
 * figures cover its measured interval (first to last message, job startup excluded), with the
 * cumulative counters interpolated linearly between the samples around its ends. Ticks are
 * converted to time with the rate the machine's own total ticks advanced at, divided by the cores
 * {@code /proc/stat} lists, so the clock tick need not be known.
 */
final class MachineCpu implements AutoCloseable {
  static final long PERIOD_MILLIS = 20;

  /** CPU time per message over an interval, in µs: all processes of the machine, and the server alone. */
  static final class PerMessage {
    final double machineMicros;
    final double serverMicros;

    PerMessage(double machineMicros, double serverMicros) {
      this.machineMicros = machineMicros;
      this.serverMicros = serverMicros;
    }

    static final PerMessage UNKNOWN = new PerMessage(Double.NaN, Double.NaN);
  }

  private static final class Sample {
    final long nanos;
    final long busyTicks;
    final long totalTicks;
    final long serverTicks;

    Sample(long nanos, long busyTicks, long totalTicks, long serverTicks) {
      this.nanos = nanos;
      this.busyTicks = busyTicks;
      this.totalTicks = totalTicks;
      this.serverTicks = serverTicks;
    }
  }

  /** The cores /proc/stat counts ("cpuN" lines), which a JVM limited by a cgroup or affinity may not see. */
  private static final int CORES = countCores();

  private static int countCores() {
    try {
      return (int) Math.max(1, Files.readAllLines(Path.of("/proc/stat")).stream().filter(line -> line.matches("cpu\\d+ .*")).count());
    } catch (IOException | RuntimeException e) {
      return Runtime.getRuntime().availableProcessors();
    }
  }

  private final Path serverStat;
  private final List<Sample> samples = new ArrayList<>();
  private final Thread sampler;
  private volatile boolean stopped;

  private MachineCpu(long serverPid) {
    this.serverStat = Path.of("/proc", Long.toString(serverPid), "stat");
    this.sampler = new Thread(this::sampleUntilStopped, "bench-machine-cpu");
    sampler.setDaemon(true);
  }

  /** Samples now and every period from now on; null where {@code /proc} cannot be read (not Linux): the columns then stay empty. */
  static MachineCpu start(long serverPid) {
    MachineCpu cpu = new MachineCpu(serverPid);
    if (!cpu.sampleNow()) {
      return null;
    }
    cpu.sampler.start();
    return cpu;
  }

  private void sampleUntilStopped() {
    while (!stopped) {
      sampleNow();
      try {
        Thread.sleep(PERIOD_MILLIS);
      } catch (InterruptedException e) {
        return;
      }
    }
  }

  /** Takes a sample; false when /proc could not be read. */
  private boolean sampleNow() {
    Sample sample = sample();
    if (sample == null) {
      return false;
    }
    synchronized (samples) {
      samples.add(sample);
    }
    return true;
  }

  private Sample sample() {
    try {
      long nanos = System.nanoTime();
      // "cpu  user nice system idle iowait irq softirq steal guest guest_nice": guest time is also in
      // user. Steal (time a hypervisor gave to others) is not this machine's work: total, not busy.
      String[] machine = Files.readAllLines(Path.of("/proc/stat")).get(0).trim().split("\\s+");
      long busy = 0;
      long total = 0;
      for (int i = 1; i <= 8 && i < machine.length; i++) {
        long ticks = Long.parseLong(machine[i]);
        total += ticks;
        if (i != 4 && i != 5 && i != 8) { // idle, iowait, steal
          busy += ticks;
        }
      }
      // The command name in parentheses may hold spaces: fields are counted after its closing one.
      String server = Files.readString(serverStat);
      String[] fields = server.substring(server.lastIndexOf(')') + 2).split(" ");
      long serverTicks = Long.parseLong(fields[11]) + Long.parseLong(fields[12]); // utime, stime
      return new Sample(nanos, busy, total, serverTicks);
    } catch (IOException | RuntimeException e) {
      return null;
    }
  }

  /** CPU per message over {@code [fromNanos, toNanos]} (System.nanoTime), in which {@code messages} went by. */
  PerMessage between(long fromNanos, long toNanos, double messages) {
    sampleNow(); // One after the interval, should the case have ended within a period of its last message.
    List<Sample> copy;
    synchronized (samples) {
      copy = new ArrayList<>(samples);
    }
    // The sampler thread and this call may add theirs out of order.
    copy.sort(java.util.Comparator.comparingLong(sample -> sample.nanos));
    if (messages <= 0 || toNanos <= fromNanos || copy.size() < 2 || copy.get(0).nanos > fromNanos
        || copy.get(copy.size() - 1).nanos < toNanos) {
      return PerMessage.UNKNOWN;
    }
    double[] from = at(copy, fromNanos);
    double[] to = at(copy, toNanos);
    double seconds = (toNanos - fromNanos) / 1e9;
    int cores = CORES;
    double ticksPerCoreSecond = (to[1] - from[1]) / seconds / cores;
    if (ticksPerCoreSecond <= 0) {
      return PerMessage.UNKNOWN;
    }
    double machineSeconds = (to[0] - from[0]) / ticksPerCoreSecond;
    double serverSeconds = (to[2] - from[2]) / ticksPerCoreSecond;
    return new PerMessage(machineSeconds * 1e6 / messages, serverSeconds * 1e6 / messages);
  }

  /** Busy, total and server ticks at {@code nanos}, interpolated between the samples around it. */
  private static double[] at(List<Sample> samples, long nanos) {
    for (int i = 1; i < samples.size(); i++) {
      Sample after = samples.get(i);
      if (after.nanos >= nanos) {
        Sample before = samples.get(i - 1);
        double f = after.nanos == before.nanos ? 1 : (double) (nanos - before.nanos) / (after.nanos - before.nanos);
        return new double[] {
          before.busyTicks + f * (after.busyTicks - before.busyTicks),
          before.totalTicks + f * (after.totalTicks - before.totalTicks),
          before.serverTicks + f * (after.serverTicks - before.serverTicks)
        };
      }
    }
    throw new IllegalArgumentException("no sample at or after " + nanos);
  }

  @Override
  public void close() {
    stopped = true;
    sampler.interrupt();
  }
}
