package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.not;
import static org.junit.Assert.assertThrows;

import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.joda.time.Duration;
import org.joda.time.Instant;
import org.junit.Test;

/** What NatsIO.read() refuses at construction, and what it displays. No server needed. */
public class NatsIOReadValidationTest {
  private static final String URL = "nats://127.0.0.1:4222";

  private static String expansionError(NatsIO.Read read) {
    Pipeline pipeline = Pipeline.create(PipelineOptionsFactory.create());
    return assertThrows(IllegalArgumentException.class, () -> pipeline.apply(read)).getMessage();
  }

  @Test
  public void readWithoutServersSaysToSetThem() {
    assertThat(expansionError(NatsIO.read().withStream("s")), containsString("withServers"));
  }

  @Test
  public void readWithoutStreamSaysToSetIt() {
    assertThat(expansionError(NatsIO.read().withServers(URL)), containsString("withStream"));
  }

  @Test
  public void startSequenceAndStartTimeTogetherAreRefused() {
    String error = expansionError(NatsIO.read().withServers(URL).withStream("s").withStartSequence(5).withStartTime(Instant.now()));
    assertThat(error, containsString("withStartSequence and withStartTime"));
  }

  @Test
  public void twoStopsAreRefused() {
    String error = expansionError(NatsIO.read().withServers(URL).withStream("s").withStopSequence(5).withStopAtEndOfStream());
    assertThat(error, containsString("more than one stop"));
  }

  @Test
  public void stopSequenceNotAfterStartIsRefused() {
    String error = expansionError(NatsIO.read().withServers(URL).withStream("s").withStartSequence(10).withStopSequence(10));
    assertThat(error, containsString("must be greater than the start"));
  }

  @Test
  public void stopTimeBeforeStartTimeIsRefused() {
    String error =
        expansionError(NatsIO.read().withServers(URL).withStream("s").withStartTime(new Instant(2_000)).withStopTime(new Instant(1_000)));
    assertThat(error, containsString("is not after withStartTime"));
  }

  @Test
  public void startSequenceBelowOneIsRefused() {
    assertThat(expansionError(NatsIO.read().withServers(URL).withStream("s").withStartSequence(0)), containsString("start at 1"));
  }

  @Test
  public void severalCoreReadersWithoutAQueueGroupAreRefused() {
    assertThat(expansionError(NatsIO.read().withServers(URL).withSubject("x").withNumReaders(2)), containsString("withQueueGroup"));
  }

  @Test
  public void emptyServerListIsRefused() {
    IllegalArgumentException error = assertThrows(IllegalArgumentException.class, () -> NatsIO.read().withServers(" , "));
    assertThat(error.getMessage(), containsString("at least one server URL"));
  }

  @Test
  public void displayDataShowsTheReadButNoCredentials() {
    NatsIO.Read read =
        NatsIO.read()
            .withConnectionConfiguration(NatsIO.ConnectionConfiguration.create("nats://alice:pa55word@host:4222").withToken("t0ken-secret"))
            .withStream("orders")
            .withFilterSubjects("orders.eu.>")
            .withStopAtEndOfStream();

    DisplayData display = DisplayData.from(read);

    assertThat(display.toString(), containsString("nats://host:4222"));
    assertThat(display.toString(), containsString("orders.eu.>"));
    assertThat(display.toString(), not(containsString("pa55word")));
    assertThat(display.toString(), not(containsString("t0ken-secret")));
    assertThat(read.getConnectionConfiguration().toString(), not(containsString("pa55word")));
    assertThat(read.getConnectionConfiguration().toString(), not(containsString("t0ken-secret")));
  }

  @Test
  public void credentialsInTheUrlReachJnatsOnlyAsUserInfo() throws Exception {
    NatsIO.ConnectionConfiguration configuration = NatsIO.ConnectionConfiguration.create("nats://alice:pa55word@host:4222, nats://other:4223");

    assertThat(NatsUrls.withoutCredentials(configuration.getServers()), equalTo(java.util.List.of("nats://host:4222", "nats://other:4223")));
    assertThat(configuration.toOptions().getServers().toString(), not(containsString("pa55word")));
    assertThat(new String(configuration.toOptions().getPassword()), equalTo("pa55word"));
  }

  @Test
  public void boundednessFollowsTheStop() {
    assertThat(NatsIO.read().withStream("s").isBounded(), equalTo(false));
    assertThat(NatsIO.read().withStream("s").withStopSequence(9).isBounded(), equalTo(true));
    assertThat(NatsIO.read().withStream("s").withStopTime(Instant.now()).isBounded(), equalTo(true));
    assertThat(NatsIO.read().withStream("s").withStopAtEndOfStream().isBounded(), equalTo(true));
  }
  @Test
  public void idleWatermarkDelayOnACoreReadIsRefusedNamingTheReadsItBelongsTo() {
    String error = expansionError(NatsIO.read().withServers(URL).withSubject("x").withIdleWatermarkDelay(Duration.standardSeconds(5)));
    assertThat(error, containsString("a Core subject read (withSubject), which does not use withIdleWatermarkDelay (position-tracked stream reads)"));
  }

  @Test
  public void idleWatermarkDelayOnADurableReadIsRefusedNamingTheReadsItBelongsTo() {
    String error =
        expansionError(NatsIO.read().withServers(URL).withStream("s").withConsumer("c").withIdleWatermarkDelay(Duration.standardSeconds(5)));
    assertThat(error, containsString("a durable-consumer read (withConsumer), which does not use withIdleWatermarkDelay (position-tracked stream reads)"));
  }

  @Test
  public void splitSizeOnADurableReadIsRefused() {
    String error = expansionError(NatsIO.read().withServers(URL).withStream("s").withConsumer("c").withSplitSize(10));
    assertThat(error, containsString("does not use withSplitSize (position-tracked stream reads)"));
  }

  @Test
  public void splitSizeAndBatchSizeOnACoreReadAreRefusedTogether() {
    String error = expansionError(NatsIO.read().withServers(URL).withSubject("x").withSplitSize(10).withBatchSize(5));
    assertThat(error, containsString("withSplitSize (position-tracked stream reads), withBatchSize (stream and durable-consumer reads): drop them"));
  }

  @Test
  public void maxBufferedMessagesOnAStreamReadIsRefused() {
    String error = expansionError(NatsIO.read().withServers(URL).withStream("s").withMaxBufferedMessages(5));
    assertThat(error, containsString("a position-tracked stream read (withStream without withConsumer), which does not use withMaxBufferedMessages (Core subject reads)"));
  }

  @Test
  public void maxBufferedMessagesOnADurableReadIsRefused() {
    String error = expansionError(NatsIO.read().withServers(URL).withStream("s").withConsumer("c").withMaxBufferedMessages(5));
    assertThat(error, containsString("does not use withMaxBufferedMessages (Core subject reads)"));
  }

  @Test
  public void consumerOnACoreReadIsRefused() {
    String error = expansionError(NatsIO.read().withServers(URL).withSubject("x").withConsumer("c"));
    assertThat(error, containsString("both withSubject and withConsumer"));
  }
}
