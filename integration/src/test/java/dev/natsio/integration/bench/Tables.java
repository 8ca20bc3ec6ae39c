package dev.natsio.integration.bench;

import java.util.ArrayList;
import java.util.List;

/** The report as a plain-text table (for the terminal) and as Markdown (for docs/benchmarks.md). */
final class Tables {
  private static final String[] COLUMNS = {
    "case", "payload", "msgs", "metric", "median", "min–max", "vs raw jnats", "target", "", "job s", "CPU µs/msg", "machine µs/msg", "server µs/msg", "load 1m"
  };

  private Tables() {}

  static List<String[]> cells(Benchmarks.Report report) {
    List<String[]> rows = new ArrayList<>();
    for (Result row : report.rows()) {
      String comparison = row.ratioText();
      String verdict = row.verdict();
      if (row.group == Result.Group.MEMORY && !row.metric.equals("throughput")) {
        Result smallest = smallestBacklog(report, row);
        if (smallest != null && smallest != row) {
          double growth = row.median() / smallest.median();
          double backlogs = (double) row.messages / smallest.messages;
          comparison = String.format("%.2f× for %.0f× backlog", growth, backlogs);
          // Flat: grows by less than a quarter while the backlog grows several times over.
          if (row.target != null && !row.target.isEmpty()) {
            verdict = growth < 1.25 ? "met" : "MISSED";
          }
        }
      }
      rows.add(new String[] {
        row.group.name().toLowerCase() + ": " + row.name,
        row.payloadText(),
        row.messagesText(),
        row.metric + " (" + row.unit + ")",
        row.formatValue(row.median()),
        row.spread(),
        comparison,
        row.target == null ? "" : row.target,
        verdict,
        row.wallText(),
        row.cpuText(),
        row.machineText(),
        row.serverText(),
        row.loadText()
      });
    }
    return rows;
  }

  private static Result smallestBacklog(Benchmarks.Report report, Result row) {
    Result smallest = null;
    for (Result other : report.rows()) {
      if (other.group == row.group && other.name.equals(row.name) && other.metric.equals(row.metric)
          && (smallest == null || other.messages < smallest.messages)) {
        smallest = other;
      }
    }
    return smallest;
  }

  static String text(Benchmarks.Report report) {
    List<String[]> rows = cells(report);
    int[] widths = new int[COLUMNS.length];
    for (int i = 0; i < COLUMNS.length; i++) {
      widths[i] = Math.max(1, COLUMNS[i].length()); // "%-0s" is not a format: the verdict column is unnamed and may be empty
      for (String[] row : rows) {
        widths[i] = Math.max(widths[i], row[i].length());
      }
    }
    StringBuilder out = new StringBuilder();
    appendLine(out, COLUMNS, widths);
    StringBuilder rule = new StringBuilder();
    for (int width : widths) {
      rule.append("-".repeat(width)).append("  ");
    }
    out.append(rule.toString().stripTrailing()).append('\n');
    for (String[] row : rows) {
      appendLine(out, row, widths);
    }
    return out.toString();
  }

  private static void appendLine(StringBuilder out, String[] cells, int[] widths) {
    StringBuilder line = new StringBuilder();
    for (int i = 0; i < cells.length; i++) {
      boolean numeric = isNumeric(i);
      String format = "%" + (numeric ? "" : "-") + widths[i] + "s  ";
      line.append(String.format(format, cells[i]));
    }
    out.append(line.toString().stripTrailing()).append('\n');
  }

  /** Right-aligned: median, min–max, job s and the three CPU columns. */
  private static boolean isNumeric(int column) {
    return column == 4 || column == 5 || (column >= 9 && column <= 12);
  }

  static String markdown(Benchmarks.Report report) {
    StringBuilder out = new StringBuilder();
    for (String line : report.header) {
      out.append("- ").append(line).append('\n');
    }
    out.append(String.format("- load average at end: %s; the run took %.1f minutes%n%n", report.loadAtEnd, report.minutes));
    out.append('|');
    for (String column : COLUMNS) {
      out.append(' ').append(column).append(" |");
    }
    out.append("\n|");
    for (int i = 0; i < COLUMNS.length; i++) {
      out.append(isNumeric(i) ? "---:|" : "---|");
    }
    out.append('\n');
    for (String[] row : cells(report)) {
      out.append('|');
      for (String cell : row) {
        out.append(' ').append(cell.replace("|", "\\|")).append(" |");
      }
      out.append('\n');
    }
    if (!report.notes.isEmpty()) {
      out.append('\n');
      for (String note : report.notes) {
        out.append("- ").append(note).append('\n');
      }
    }
    return out.toString();
  }
}
