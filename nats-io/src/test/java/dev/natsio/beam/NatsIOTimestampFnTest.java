package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.Assert.assertThrows;

import dev.natsio.beam.testing.NatsTestServer;
import java.util.ArrayList;
import java.util.List;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.transforms.errorhandling.BadRecord;
import org.apache.beam.sdk.transforms.errorhandling.ErrorHandler.BadRecordErrorHandler;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Duration;
import org.joda.time.Instant;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;

/** Reads with {@code withTimestampFn}: delays that make sense, and a function that fails on one message. */
public class NatsIOTimestampFnTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  @Test
  public void negativeDelaysAreRefusedNamingTheSetting() {
    IllegalArgumentException fnDelay = assertThrows(IllegalArgumentException.class,
        () -> NatsIO.read().withTimestampFn(m -> m.getTimestamp(), Duration.millis(-1)));
    assertThat(fnDelay.getMessage(), containsString("withTimestampFn"));
    assertThat(fnDelay.getMessage(), containsString("must not be negative"));
    IllegalArgumentException idleDelay = assertThrows(IllegalArgumentException.class,
        () -> NatsIO.readSourceDescriptors().withIdleWatermarkDelay(Duration.standardSeconds(-2)));
    assertThat(idleDelay.getMessage(), containsString("withIdleWatermarkDelay"));
  }

  @Test
  public void timestampFnThatThrowsSendsThatMessageToTheBadRecordHandler() throws Exception {
    createStream(SERVER.sharedConnection(), "stamps", "stamps.>");
    publish(SERVER.sharedConnection(), "stamps.x", 5); // Payloads "m0".."m4".
    BadRecordErrorHandler<PCollection<String>> errors = pipeline.registerBadRecordErrorHandler(new Descriptions());
    PCollection<NatsMessage> messages = pipeline.apply(
        NatsIO.read().withServers(SERVER.url()).withStream("stamps").withStopAtEndOfStream()
            .withTimestampFn(new FailsOnM3(), Duration.ZERO)
            .withBadRecordErrorHandler(errors));
    errors.close();

    PAssert.that(messages.apply(MapElements.into(TypeDescriptors.strings()).via(NatsMessage::getPayloadAsString)))
        .containsInAnyOrder("m0", "m1", "m2", "m4");
    PAssert.that(errors.getOutput()).satisfies(descriptions -> {
      List<String> all = new ArrayList<>();
      descriptions.forEach(all::add);
      assertThat(all.size(), equalTo(1));
      assertThat(all.get(0), containsString("sequence 4 of stream 'stamps'"));
      return null;
    });
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void badRecordHandlerOnACoreReadIsRefusedNamingTheReadsItBelongsTo() throws Exception {
    org.apache.beam.sdk.Pipeline core = org.apache.beam.sdk.Pipeline.create();
    BadRecordErrorHandler<PCollection<String>> errors = core.registerBadRecordErrorHandler(new Descriptions());
    IllegalArgumentException error = assertThrows(IllegalArgumentException.class,
        () -> core.apply(NatsIO.read().withServers(SERVER.url()).withSubject("ticks").withBadRecordErrorHandler(errors)));
    assertThat(error.getMessage(), containsString("withBadRecordErrorHandler (position-tracked stream reads with withTimestampFn"));
  }

  /** Event time 2024-01-01 for every message but "m3", on which it throws. */
  private static final class FailsOnM3 implements SerializableFunction<NatsMessage, Instant> {
    @Override
    public Instant apply(NatsMessage message) {
      if (message.getPayloadAsString().equals("m3")) {
        throw new IllegalStateException("no event time in m3");
      }
      return Instant.parse("2024-01-01T00:00:00Z");
    }
  }

  private static final class Descriptions extends PTransform<PCollection<BadRecord>, PCollection<String>> {
    @Override
    public PCollection<String> expand(PCollection<BadRecord> input) {
      return input.apply(MapElements.into(TypeDescriptors.strings()).via(r -> r.getFailure().getDescription()));
    }
  }
}
