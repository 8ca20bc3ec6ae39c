package dev.natsio.integration.bench;

import java.util.ArrayList;
import java.util.List;

/** One row of the benchmark table: a case's figure over its repetitions, and how it compares. */
final class Result {
  enum Group { READ, WRITE, LATENCY, MEMORY }

  final Group group;
  final String name;
  final int payloadBytes;
  /** Messages per run; for latency rows, the messages timed over all windows. */
  long messages;
  final String metric;
  final String unit;
  /** Null for a baseline row, or a row that has no baseline. */
  final String baselineName;
  final String target;
  final List<Double> values = new ArrayList<>();
  /** Each repetition's value divided by the baseline's in the same repetition. */
  final List<Double> ratios = new ArrayList<>();
  /** Seconds from submitting the job to its end (or the wait's end), startup included. */
  final List<Double> wallSeconds = new ArrayList<>();
  final List<Double> loads = new ArrayList<>();
  /** Reads: CPU µs per message on the reading thread(s); steadier than rates on a shared machine. */
  final List<Double> cpuMicros = new ArrayList<>();
  /** Reads: CPU µs per message of every process on the machine, and of the nats-server alone (see MachineCpu). */
  final List<Double> machineMicros = new ArrayList<>();
  final List<Double> serverMicros = new ArrayList<>();

  Result(Group group, String name, int payloadBytes, long messages, String metric, String unit, String baselineName, String target) {
    this.group = group;
    this.name = name;
    this.payloadBytes = payloadBytes;
    this.messages = messages;
    this.metric = metric;
    this.unit = unit;
    this.baselineName = baselineName;
    this.target = target;
  }

  boolean isBaseline() {
    return name.startsWith("raw jnats");
  }

  double median() {
    return Stats.median(values);
  }

  double medianRatio() {
    return Stats.median(ratios);
  }

  /** "met", "MISSED" or "" for rows without a target. Judged on medians. */
  String verdict() {
    if (target == null || target.isEmpty()) {
      return "";
    }
    if (target.startsWith("≥")) {
      double wanted = Double.parseDouble(target.substring(1).replace("×", "").trim());
      return medianRatio() >= wanted ? "met" : "MISSED";
    }
    if (target.startsWith("<")) {
      double bound = Double.parseDouble(target.substring(1).replace("ms", "").trim());
      return median() < bound ? "met" : "MISSED";
    }
    return "";
  }

  String formatValue(double value) {
    if (Double.isNaN(value)) {
      return "-";
    }
    if (unit.equals("msgs/s")) {
      return String.format("%,.0f", value);
    }
    if (value >= 100) {
      return String.format("%,.0f", value);
    }
    return String.format("%.1f", value);
  }

  String spread() {
    if (values.size() < 2) {
      return "(1 run)";
    }
    return formatValue(Stats.min(values)) + "–" + formatValue(Stats.max(values));
  }

  String ratioText() {
    return ratios.isEmpty() ? "" : String.format("%.2f×", medianRatio());
  }

  String wallText() {
    return wallSeconds.isEmpty() ? "" : String.format("%.1f", Stats.median(wallSeconds));
  }

  String cpuText() {
    return microsText(cpuMicros);
  }

  String machineText() {
    return microsText(machineMicros);
  }

  String serverText() {
    return microsText(serverMicros);
  }

  private static String microsText(List<Double> micros) {
    return micros.isEmpty() ? "" : String.format("%.2f", Stats.median(micros));
  }

  String loadText() {
    return loads.isEmpty() ? "" : String.format("%.1f–%.1f", Stats.min(loads), Stats.max(loads));
  }

  String payloadText() {
    return payloadBytes >= 1024 ? (payloadBytes / 1024) + " KB" : payloadBytes + " B";
  }

  String messagesText() {
    if (messages >= 1_000_000 && messages % 100_000 == 0) {
      return (messages / 1_000_000.0 % 1 == 0 ? String.valueOf(messages / 1_000_000) : String.valueOf(messages / 1_000_000.0)) + "M";
    }
    if (messages >= 1_000 && messages % 1_000 == 0) {
      return (messages / 1_000) + "k";
    }
    return String.valueOf(messages);
  }
}
