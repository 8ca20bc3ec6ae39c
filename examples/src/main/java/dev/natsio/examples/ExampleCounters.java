package dev.natsio.examples;

import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.transforms.DoFn;

/**
 * Beam counters an example reads back after its pipeline, so that it prints only what it has
 * checked (the Direct and Flink runners both report attempted counter values).
 */
final class ExampleCounters {
  private ExampleCounters() {}

  /** A DoFn counting its input in the counter {@code name}. */
  static DoFn<Object, Void> counting(String name) {
    return new CountFn(name);
  }

  /** The counter {@code name}'s total in a finished pipeline. */
  static long total(PipelineResult result, String name) {
    long total = 0;
    for (MetricResult<Long> counter : result.metrics().queryMetrics(
        MetricsFilter.builder().addNameFilter(MetricNameFilter.named(ExampleCounters.class, name)).build()).getCounters()) {
      total += counter.getAttempted();
    }
    return total;
  }

  private static final class CountFn extends DoFn<Object, Void> {
    private final Counter counter;

    CountFn(String name) {
      this.counter = Metrics.counter(ExampleCounters.class, name);
    }

    @ProcessElement
    public void process() {
      counter.inc();
    }
  }
}
