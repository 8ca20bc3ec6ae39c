package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.Assert.assertThrows;

import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.joda.time.Instant;
import org.junit.Test;
import org.junit.function.ThrowingRunnable;

/**
 * Descriptors given to {@code NatsIO.readSourceDescriptors()} are refused, when built, for the same
 * contradictions as {@code NatsIO.read()}'s own settings, with the same messages. No server needed.
 */
public class NatsSourceDescriptorValidationTest {
  private static final String URL = "nats://127.0.0.1:4222";

  private static String error(ThrowingRunnable build) {
    return assertThrows(IllegalArgumentException.class, build).getMessage();
  }

  /** The read's message for the same settings, as the descriptor would word it. */
  private static String readError(NatsIO.Read read) {
    Pipeline pipeline = Pipeline.create(PipelineOptionsFactory.create());
    return error(() -> pipeline.apply(read)).replace("NatsIO.read()", "NatsSourceDescriptor");
  }

  private static NatsIO.Read read() {
    return NatsIO.read().withServers(URL).withStream("s");
  }

  @Test
  public void startSequenceAndStartTimeTogetherAreRefusedAsTheReadRefusesThem() {
    Instant time = new Instant(1_000);
    String descriptor = error(() -> NatsSourceDescriptor.of("s").withStartSequence(5).withStartTime(time));
    assertThat(descriptor, equalTo(readError(read().withStartSequence(5).withStartTime(time))));
  }

  @Test
  public void twoStopsAreRefusedInsteadOfOneWinning() {
    String descriptor = error(() -> NatsSourceDescriptor.of("s").withStopSequence(50).withStopAtEndOfStream());
    assertThat(descriptor, equalTo(readError(read().withStopSequence(50).withStopAtEndOfStream())));
  }

  @Test
  public void stopSequenceNotAfterTheStartIsRefused() {
    String descriptor = error(() -> NatsSourceDescriptor.of("s").withStartSequence(10).withStopSequence(10));
    assertThat(descriptor, equalTo(readError(read().withStartSequence(10).withStopSequence(10))));
  }

  @Test
  public void stopTimeNotAfterTheStartTimeIsRefused() {
    String descriptor = error(() -> NatsSourceDescriptor.of("s").withStartTime(new Instant(2_000)).withStopTime(new Instant(1_000)));
    assertThat(descriptor, equalTo(readError(read().withStartTime(new Instant(2_000)).withStopTime(new Instant(1_000)))));
  }

  @Test
  public void startSequenceBelowOneIsRefused() {
    String descriptor = error(() -> NatsSourceDescriptor.of("s").withStartSequence(0));
    assertThat(descriptor, equalTo(readError(read().withStartSequence(0))));
  }

  @Test
  public void emptyFilterSubjectIsRefused() {
    String descriptor = error(() -> NatsSourceDescriptor.of("s").withFilterSubjects("a.>", " "));
    assertThat(descriptor, equalTo(readError(read().withFilterSubjects("a.>", " "))));
  }

  @Test
  public void blankStreamIsRefused() {
    String descriptor = error(() -> NatsSourceDescriptor.of(" "));
    assertThat(descriptor, containsString("NatsSourceDescriptor.of needs a JetStream stream name"));
  }
}
