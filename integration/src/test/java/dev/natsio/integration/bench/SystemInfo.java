package dev.natsio.integration.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * What the machine is doing: cores, load average, this process's resident memory. The machine is
 * shared with other builds, so every figure is printed next to the load it was taken under.
 */
final class SystemInfo {
  private SystemInfo() {}

  static int cores() {
    return Runtime.getRuntime().availableProcessors();
  }

  /** The 1-, 5- and 15-minute load averages, as {@code /proc/loadavg} shows them ("?" off Linux). */
  static String loadAverage() {
    try {
      String[] fields = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
      return fields[0] + " " + fields[1] + " " + fields[2];
    } catch (IOException | RuntimeException e) {
      return "?";
    }
  }

  /** The 1-minute load average, or NaN off Linux. */
  static double loadAverage1m() {
    try {
      return Double.parseDouble(loadAverage().split(" ")[0]);
    } catch (NumberFormatException e) {
      return Double.NaN;
    }
  }

  /** Resident set size now (VmRSS), in bytes; -1 off Linux. */
  static long residentBytes() {
    return statusField("VmRSS:");
  }

  /** The largest resident set size this process has had (VmHWM), in bytes; -1 off Linux. */
  static long peakResidentBytes() {
    return statusField("VmHWM:");
  }

  static String cpuModel() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
        if (line.startsWith("model name")) {
          return line.substring(line.indexOf(':') + 1).trim();
        }
      }
    } catch (IOException e) {
      // Not Linux: the core count still says what matters.
    }
    return "unknown CPU";
  }

  static long totalMemoryBytes() {
    try {
      List<String> lines = Files.readAllLines(Path.of("/proc/meminfo"));
      for (String line : lines) {
        if (line.startsWith("MemTotal:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        }
      }
    } catch (IOException | RuntimeException e) {
      // Unknown.
    }
    return -1;
  }

  private static long statusField(String name) {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith(name)) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024; // Reported in kB.
        }
      }
    } catch (IOException | RuntimeException e) {
      // Not Linux.
    }
    return -1;
  }
}
