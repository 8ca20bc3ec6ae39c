package dev.natsio.beam;

import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.StreamingOptions;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What the reads need to know of the runner a pipeline is built for, from its options.
 *
 * <h2>Reading runner options</h2>
 *
 * <p>NatsIO depends on no runner, so a runner's options interface (Flink's {@code
 * FlinkPipelineOptions}, the Direct runner's {@code DirectOptions}) is looked up by name and its
 * getter called through reflection ({@link #read}); an options interface the pipeline's classpath
 * lacks, or a getter a runner version renamed, reads as null, and the caller falls back to what it
 * would do without the runner's help.
 *
 * <h2>Checkpoints that hold the watermark back</h2>
 *
 * <p>Beam's Flink operators pass a watermark on only between bundles, and end a bundle either
 * after {@code --maxBundleSize} elements or, {@code --maxBundleTimeMills} (1 s by default) after
 * the previous bundle ended, on a timer that then also passes the watermark on. A checkpoint ends
 * the open bundle too, but does not pass the watermark on unless {@code
 * --finishBundleBeforeCheckpointing=true}. So with checkpoints at least as often as the bundle
 * time, a steady stream's bundles always end at a checkpoint, never on the timer, and the
 * watermark after every Beam step stops: windows never close (seen on a Flink cluster: checkpoints
 * every second, a read of about 200 messages a second, no window in 120 s; with checkpoints every
 * 2 s, or with {@code --finishBundleBeforeCheckpointing=true}, every window closed). {@link
 * #checkpointsHoldWatermarksBack} says so when a read is built for such a job.
 */
final class RunnerOptions {
  private static final Logger LOG = LoggerFactory.getLogger(RunnerOptions.class);
  static final String FLINK_OPTIONS = "org.apache.beam.runners.flink.FlinkPipelineOptions";
  static final String DIRECT_OPTIONS = "org.apache.beam.runners.direct.DirectOptions";
  /** Beam's default {@code --maxBundleTimeMills} on Flink. */
  private static final long DEFAULT_MAX_BUNDLE_MILLIS = 1_000;
  private static final AtomicBoolean WARNED = new AtomicBoolean();

  private RunnerOptions() {}

  /** The name of the runner the options ask for, or "" when they name none. */
  static String runnerName(PipelineOptions options) {
    return options.getRunner() == null ? "" : options.getRunner().getName();
  }

  static boolean isFlink(PipelineOptions options) {
    return runnerName(options).contains("Flink");
  }

  /**
   * The value {@code getter} of the options interface named {@code optionsInterface} returns for
   * {@code options}; null when that interface is not on the classpath or the call fails.
   */
  static @Nullable Object read(PipelineOptions options, String optionsInterface, String getter) {
    try {
      @SuppressWarnings("unchecked")
      Class<? extends PipelineOptions> type = (Class<? extends PipelineOptions>) Class.forName(optionsInterface);
      return type.getMethod(getter).invoke(options.as(type));
    } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
      LOG.debug("Could not read {}.{}", optionsInterface, getter, e);
      return null;
    }
  }

  /** Flink's checkpointing interval in milliseconds; null when unknown or not Flink. */
  static @Nullable Long flinkCheckpointingInterval(PipelineOptions options) {
    Object interval = isFlink(options) ? read(options, FLINK_OPTIONS, "getCheckpointingInterval") : null;
    return interval instanceof Long ? (Long) interval : null;
  }

  /**
   * The warning for a job whose checkpoints would keep the watermark after its Beam steps from
   * moving (see the class comment), or null when its options do not lead there.
   */
  static @Nullable String checkpointsHoldWatermarksBack(PipelineOptions options) {
    if (!isFlink(options)) {
      return null;
    }
    Object bundleMillis = read(options, FLINK_OPTIONS, "getMaxBundleTimeMills");
    Object finishBefore = read(options, FLINK_OPTIONS, "getFinishBundleBeforeCheckpointing");
    return checkpointsHoldWatermarksBack(
        options.as(StreamingOptions.class).isStreaming(),
        flinkCheckpointingInterval(options),
        bundleMillis instanceof Long ? (Long) bundleMillis : null,
        Boolean.TRUE.equals(finishBefore));
  }

  /**
   * Logs {@link #checkpointsHoldWatermarksBack} as a warning, once per JVM (a pipeline applies
   * several reads, and an unbounded read may expand into another NatsIO read).
   */
  static void warnIfCheckpointsHoldWatermarksBack(PipelineOptions options) {
    String warning = checkpointsHoldWatermarksBack(options);
    if (warning != null && WARNED.compareAndSet(false, true)) {
      LOG.warn(warning);
    }
  }

  static @Nullable String checkpointsHoldWatermarksBack(
      boolean streaming, @Nullable Long checkpointingInterval, @Nullable Long maxBundleTimeMills, boolean finishBundleBeforeCheckpointing) {
    long bundleMillis = maxBundleTimeMills == null ? DEFAULT_MAX_BUNDLE_MILLIS : maxBundleTimeMills;
    if (!streaming || finishBundleBeforeCheckpointing || checkpointingInterval == null || checkpointingInterval <= 0
        || checkpointingInterval > bundleMillis) {
      return null;
    }
    return "Checkpoints every " + checkpointingInterval + " ms, no longer apart than the bundle time (--maxBundleTimeMills="
        + bundleMillis + "): Beam's Flink runner then passes a watermark on only at the end of a bundle that a checkpoint "
        + "did not end, so with steady traffic the watermark after each Beam step stops and windows never close. Set "
        + "--finishBundleBeforeCheckpointing=true, or checkpoint less often than --maxBundleTimeMills (docs/runners.md).";
  }
}
