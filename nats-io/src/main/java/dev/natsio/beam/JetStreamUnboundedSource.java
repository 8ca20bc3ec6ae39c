package dev.natsio.beam;

import java.util.List;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.io.UnboundedSource;
import org.apache.beam.sdk.options.ExperimentalOptions;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * The live tail of {@link NatsIO#read()} (a stream read with no stop and no limits) as a Beam
 * {@link UnboundedSource}, for runners that run such sources natively.
 *
 * <h2>Why a second way to read</h2>
 *
 * <p>Beam's classic FlinkRunner turns an {@code UnboundedSource} into a Flink source, but runs a
 * splittable DoFn as a keyed operator fed by an Impulse. Measured on Beam 2.70 / Flink 1.19, that
 * operator lets the watermark through only while its DoFn is idle, so event-time windows after a
 * busy unbounded splittable DoFn do not close until the stream goes quiet; and it checkpoints the
 * splittable DoFn's position only every 10,000 outputs or 10 seconds. As a Flink source, the read
 * emits its watermark on Flink's watermark interval and keeps its exact next sequence in Flink's
 * checkpointed split state at every checkpoint. {@link #isPreferredOn} says when the read takes
 * this form; the two forms are different job graphs, so a savepoint of one does not restore the
 * other (see {@code docs/runners.md}).
 *
 * <h2>Splitting</h2>
 *
 * <p>One split per partition ({@link StreamPartitions}: each filter subject), whatever the runner
 * asks for: an ordered consumer delivers a partition's sequences in order to one reader, which is
 * also what the splittable DoFn does with an unbounded range. Flink deals the splits out over its
 * subtasks (split i to subtask i mod parallelism); a subtask with several reads them in turn and
 * emits the least of their watermarks, and one without a split finishes at once. Each split's
 * position is its own {@link JetStreamCheckpointMark}, so a restore resumes every partition where
 * it was. Splits are made once, when the job starts: a restored job keeps the partitions of the
 * job that took the checkpoint.
 *
 * <p>A subtask with several splits asks each for one message in turn, and waits (about 50 ms) only
 * when none had one. So when there are more splits than the runner asked for, each reader returns
 * at once when it has nothing buffered, instead of waiting a poll for a message: a quiet partition
 * waiting 20 ms per turn held a busy one on the same subtask to 50 messages a second.
 *
 * <h2>In checkpoints</h2>
 *
 * <p>Beam's Flink wrapper Java-serializes each split, this source included, into Flink's
 * checkpoints and savepoints, and a restored job reads with the restored copy: the connection
 * settings (credentials given inline among them) are those of the job that took the checkpoint.
 * Classes it holds keep fixed serial version UIDs so savepoints survive upgrades.
 *
 * <h2>Position and watermark</h2>
 *
 * <p>See {@link JetStreamUnboundedReader}: the same start, timestamps, watermark and errors as the
 * splittable DoFn (both run {@link JetStreamReadCore}), with the position in a {@link
 * JetStreamCheckpointMark}.
 */
final class JetStreamUnboundedSource extends UnboundedSource<NatsMessage, JetStreamCheckpointMark> {
  private static final long serialVersionUID = 1L;
  /** The classic Flink runners: FlinkRunner and TestFlinkRunner (not a subclass of it). */
  private static final java.util.Set<String> FLINK_RUNNERS =
      java.util.Set.of("org.apache.beam.runners.flink.FlinkRunner", "org.apache.beam.runners.flink.TestFlinkRunner");

  private final NatsIO.ReadSourceDescriptors spec;
  private final NatsSourceDescriptor descriptor;
  /**
   * True when there are more splits than subtasks, so a subtask may read several in turn: its
   * reader then never waits for a message (see {@link JetStreamUnboundedReader}). Absent from
   * sources serialized before partitions existed, which read with one split: false.
   */
  private final boolean sharesTask;

  JetStreamUnboundedSource(NatsIO.ReadSourceDescriptors spec, NatsSourceDescriptor descriptor) {
    this(spec, descriptor, false);
  }

  private JetStreamUnboundedSource(NatsIO.ReadSourceDescriptors spec, NatsSourceDescriptor descriptor, boolean sharesTask) {
    this.spec = spec;
    this.descriptor = descriptor;
    this.sharesTask = sharesTask;
  }

  /**
   * True where an unbounded stream read should be this source rather than the splittable DoFn:
   * on Beam's classic (non-portable) FlinkRunner, which runs it as a Flink source, and wherever
   * the pipeline asks for {@code --experiments=use_deprecated_read}, Beam's switch for source-based
   * reads. {@code --experiments=use_sdf_read} keeps the splittable DoFn on Flink too.
   */
  static boolean isPreferredOn(PipelineOptions options) {
    if (ExperimentalOptions.hasExperiment(options, "use_deprecated_read")
        || ExperimentalOptions.hasExperiment(options, "beam_fn_api_use_deprecated_read")) {
      return true;
    }
    if (ExperimentalOptions.hasExperiment(options, "use_sdf_read")
        || ExperimentalOptions.hasExperiment(options, "beam_fn_api")) {
      return false;
    }
    for (Class<?> runner = options.getRunner(); runner != null; runner = runner.getSuperclass()) {
      if (FLINK_RUNNERS.contains(runner.getName())) {
        return true;
      }
    }
    return false;
  }

  NatsIO.ReadSourceDescriptors getSpec() {
    return spec;
  }

  NatsSourceDescriptor getDescriptor() {
    return descriptor;
  }

  boolean sharesTask() {
    return sharesTask;
  }

  @Override
  public List<JetStreamUnboundedSource> split(int desiredNumSplits, PipelineOptions options) {
    List<NatsSourceDescriptor> partitions = StreamPartitions.of(descriptor);
    boolean shared = partitions.size() > desiredNumSplits;
    List<JetStreamUnboundedSource> splits = new java.util.ArrayList<>();
    for (NatsSourceDescriptor partition : partitions) {
      splits.add(new JetStreamUnboundedSource(spec, partition, shared));
    }
    return splits;
  }

  @Override
  public UnboundedReader<NatsMessage> createReader(PipelineOptions options, @Nullable JetStreamCheckpointMark mark) {
    return new JetStreamUnboundedReader(this, mark);
  }

  @Override
  public Coder<JetStreamCheckpointMark> getCheckpointMarkCoder() {
    return JetStreamCheckpointMark.Coder.of();
  }

  @Override
  public Coder<NatsMessage> getOutputCoder() {
    return NatsMessageCoder.of();
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    spec.getConnectionConfiguration().populateDisplayData(builder);
    builder.add(DisplayData.item("stream", descriptor.getStream()).withLabel("JetStream stream"));
    if (!descriptor.getFilterSubjects().isEmpty()) {
      builder.add(DisplayData.item("filterSubjects", String.join(",", descriptor.getFilterSubjects())));
    }
    builder.add(DisplayData.item("timestampPolicy", spec.getTimestampPolicy().name()));
  }
}
