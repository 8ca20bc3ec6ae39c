package dev.natsio.integration.bench;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;

/**
 * The report as a PNG, drawn with Java2D so the benchmarks need no charting library: one panel of
 * horizontal bars per kind of figure, each bar the median with a whisker from the smallest to the
 * largest repetition, and the target drawn as a dashed line.
 */
final class Chart {
  private static final int WIDTH = 1400;
  private static final int LABEL_WIDTH = 560;
  private static final int BAR_HEIGHT = 18;
  private static final int BAR_GAP = 6;
  private static final Color BASELINE = new Color(150, 150, 150);
  private static final Color NATSIO = new Color(39, 110, 190);
  private static final Color TARGET = new Color(200, 40, 40);

  private Chart() {}

  private static final class Bar {
    final String label;
    final double median;
    final double min;
    final double max;
    final boolean baseline;
    final String note;
    /** Where a dashed target line crosses this bar's row (NaN for none). */
    final double target;

    Bar(String label, Result row, String note, double target) {
      this.label = label;
      this.median = row.median();
      this.min = Stats.min(row.values);
      this.max = Stats.max(row.values);
      this.baseline = row.isBaseline();
      this.note = note;
      this.target = target;
    }
  }

  private static final class Panel {
    final String title;
    final String unit;
    final List<Bar> bars = new ArrayList<>();

    Panel(String title, String unit) {
      this.title = title;
      this.unit = unit;
    }
  }

  static void write(Benchmarks.Report report, Path file) throws IOException {
    List<Panel> panels = panels(report);
    int height = 70;
    for (Panel panel : panels) {
      height += 50 + panel.bars.size() * (BAR_HEIGHT + BAR_GAP) + 20;
    }
    height += 30;
    BufferedImage image = new BufferedImage(WIDTH, height, BufferedImage.TYPE_INT_RGB);
    Graphics2D g = image.createGraphics();
    try {
      g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
      g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
      g.setColor(Color.WHITE);
      g.fillRect(0, 0, WIDTH, height);
      g.setColor(Color.BLACK);
      g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 20));
      g.drawString("NatsIO vs raw jnats" + (report.config.quick ? " (quick smoke run: sizes too small to mean anything)" : ""), 20, 32);
      g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 13));
      g.drawString(String.format("%d cores, load average %s at start, %s at end; bars: median, whiskers: min–max of repetitions; "
          + "grey: raw jnats baseline, blue: NatsIO; red dashes: target", SystemInfo.cores(), report.loadAtStart, report.loadAtEnd), 20, 54);
      int y = 70;
      for (Panel panel : panels) {
        y = drawPanel(g, panel, y);
      }
    } finally {
      g.dispose();
    }
    ImageIO.write(image, "png", file.toFile());
  }

  private static List<Panel> panels(Benchmarks.Report report) {
    List<Panel> panels = new ArrayList<>();
    Panel reads = new Panel("Read throughput", "msgs/s");
    Panel writes = new Panel("Write throughput", "msgs/s");
    Panel latency = new Panel("End-to-end latency at " + String.format("%,d", report.config.latencyRate) + " msgs/s", "ms");
    Panel memory = new Panel("Memory while draining a backlog (128 B messages)", "MB");
    for (Result row : report.rows()) {
      String size = row.payloadText() + ", " + row.messagesText() + " msgs";
      switch (row.group) {
        case READ:
        case WRITE: {
          Result base = row.baselineName == null ? null : report.find(row.group, row.baselineName, row.payloadBytes, row.metric);
          double target = base != null && row.target != null && row.target.startsWith("≥") ? 0.8 * base.median() : Double.NaN;
          String note = row.ratioText().isEmpty() ? "" : row.ratioText() + " raw";
          (row.group == Result.Group.READ ? reads : writes).bars.add(new Bar(size + ": " + row.name, row, note, target));
          break;
        }
        case LATENCY:
          latency.bars.add(new Bar(row.metric.replace("latency ", "") + ": " + row.name, row, "",
              row.target != null && row.target.startsWith("<") ? 250 : Double.NaN));
          break;
        case MEMORY:
          if (!row.metric.equals("throughput")) {
            memory.bars.add(new Bar(row.metric + ", backlog " + row.messagesText(), row, "", Double.NaN));
          }
          break;
        default:
          break;
      }
    }
    // Memory: each figure for both backlogs side by side, which is the comparison that matters.
    memory.bars.sort(java.util.Comparator.comparing((Bar bar) -> bar.label.substring(0, bar.label.indexOf(", backlog"))));
    for (Panel panel : List.of(reads, writes, latency, memory)) {
      if (!panel.bars.isEmpty()) {
        panels.add(panel);
      }
    }
    return panels;
  }

  private static int drawPanel(Graphics2D g, Panel panel, int top) {
    g.setColor(Color.BLACK);
    g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
    g.drawString(panel.title + " (" + panel.unit + ")", 20, top + 30);
    int y = top + 45;
    double scaleMax = 0;
    for (Bar bar : panel.bars) {
      scaleMax = Math.max(scaleMax, Math.max(bar.max, Double.isNaN(bar.target) ? 0 : bar.target));
    }
    scaleMax = scaleMax <= 0 ? 1 : scaleMax * 1.12;
    int plotLeft = LABEL_WIDTH + 20;
    int plotWidth = WIDTH - plotLeft - 130;
    g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
    FontMetrics metrics = g.getFontMetrics();
    for (Bar bar : panel.bars) {
      g.setColor(Color.DARK_GRAY);
      String label = bar.label;
      while (metrics.stringWidth(label) > LABEL_WIDTH - 10 && label.length() > 4) {
        label = label.substring(0, label.length() - 2);
      }
      g.drawString(label, plotLeft - 10 - metrics.stringWidth(label), y + BAR_HEIGHT - 5);
      int width = (int) Math.round(bar.median / scaleMax * plotWidth);
      g.setColor(bar.baseline ? BASELINE : NATSIO);
      g.fillRect(plotLeft, y, Math.max(1, width), BAR_HEIGHT);
      if (bar.max > bar.min) {
        int from = plotLeft + (int) Math.round(bar.min / scaleMax * plotWidth);
        int to = plotLeft + (int) Math.round(bar.max / scaleMax * plotWidth);
        g.setColor(Color.BLACK);
        g.setStroke(new BasicStroke(1.5f));
        g.drawLine(from, y + BAR_HEIGHT / 2, to, y + BAR_HEIGHT / 2);
        g.drawLine(from, y + 4, from, y + BAR_HEIGHT - 4);
        g.drawLine(to, y + 4, to, y + BAR_HEIGHT - 4);
      }
      if (!Double.isNaN(bar.target)) {
        int x = plotLeft + (int) Math.round(bar.target / scaleMax * plotWidth);
        g.setColor(TARGET);
        g.setStroke(new BasicStroke(2f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f, new float[] {4f, 3f}, 0f));
        g.drawLine(x, y - 3, x, y + BAR_HEIGHT + 3);
      }
      g.setStroke(new BasicStroke(1f));
      g.setColor(Color.BLACK);
      String value = panel.unit.equals("msgs/s") ? String.format("%,.0f", bar.median) : String.format("%.1f", bar.median);
      int textX = plotLeft + Math.max(width, (int) Math.round(bar.max / scaleMax * plotWidth)) + 6;
      g.drawString(value + (bar.note.isEmpty() ? "" : "  " + bar.note), textX, y + BAR_HEIGHT - 5);
      y += BAR_HEIGHT + BAR_GAP;
    }
    return y + 20;
  }
}
