package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.nullValue;

import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.junit.Test;

/** What the reads learn from a pipeline's runner options, and the warning about checkpoints that hold watermarks back. */
public class RunnerOptionsTest {
  @Test
  public void checkpointsAsFrequentAsTheBundleTimeAreWarnedAboutWithBothRemedies() {
    String warning = RunnerOptions.checkpointsHoldWatermarksBack(true, 1_000L, null, false);
    assertThat(warning, containsString("--finishBundleBeforeCheckpointing=true"));
    assertThat(warning, containsString("--maxBundleTimeMills=1000"));
  }

  @Test
  public void checkpointsMoreFrequentThanAGivenBundleTimeAreWarnedAbout() {
    assertThat(RunnerOptions.checkpointsHoldWatermarksBack(true, 3_000L, 5_000L, false), containsString("every 3000 ms"));
  }

  @Test
  public void bundlesFinishedBeforeCheckpointsAreNotWarnedAbout() {
    assertThat(RunnerOptions.checkpointsHoldWatermarksBack(true, 1_000L, null, true), nullValue());
  }

  @Test
  public void checkpointsLessFrequentThanTheBundleTimeAreNotWarnedAbout() {
    assertThat(RunnerOptions.checkpointsHoldWatermarksBack(true, 2_000L, null, false), nullValue());
  }

  @Test
  public void batchJobsAndJobsWithoutCheckpointsAreNotWarnedAbout() {
    assertThat(RunnerOptions.checkpointsHoldWatermarksBack(false, 1_000L, null, false), nullValue());
    assertThat(RunnerOptions.checkpointsHoldWatermarksBack(true, -1L, null, false), nullValue());
    assertThat(RunnerOptions.checkpointsHoldWatermarksBack(true, null, null, false), nullValue());
  }

  @Test
  public void optionsOfARunnerNotOnTheClasspathReadAsNullAndNothingIsWarned() {
    PipelineOptions options = PipelineOptionsFactory.create();
    assertThat(RunnerOptions.read(options, RunnerOptions.FLINK_OPTIONS, "getCheckpointingInterval"), nullValue());
    assertThat(RunnerOptions.flinkCheckpointingInterval(options), nullValue());
    assertThat(RunnerOptions.checkpointsHoldWatermarksBack(options), nullValue());
  }

  @Test
  public void aGetterOfTheOptionsOnTheClasspathIsRead() {
    PipelineOptions options = PipelineOptionsFactory.fromArgs("--jobName=orders").create();
    assertThat(RunnerOptions.read(options, PipelineOptions.class.getName(), "getJobName"), equalTo("orders"));
  }
}
