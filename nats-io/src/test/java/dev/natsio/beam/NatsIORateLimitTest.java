package dev.natsio.beam;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;
import static org.hamcrest.Matchers.lessThanOrEqualTo;

import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.Connection;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.PCollection;
import org.joda.time.Instant;
import org.junit.ClassRule;
import org.junit.Rule;
import org.junit.Test;

/**
 * {@code withMaxMessagesPerSecond}: output times are spread out as the limit requires. The checks
 * are loose on purpose (a lower bound on the total spread, a generous cap per second), so a slow
 * machine cannot make them flaky: unlimited, these reads output 200 messages in well under a second.
 */
public class NatsIORateLimitTest {
  private static final int MESSAGES = 200;
  private static final double RATE = 100;

  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  private final Connection connection = SERVER.sharedConnection();

  /** Each element's timestamp: with processing time, the moment the read output it. */
  private static final class OutputTimeFn extends DoFn<NatsMessage, Long> {
    @ProcessElement
    public void process(@Timestamp Instant timestamp, OutputReceiver<Long> out) {
      out.output(timestamp.getMillis());
    }
  }

  /** Checks that the output times obey the rate: at least (n - slack) / rate seconds overall, at most rate + 15% in any second. */
  private static Void assertPaced(Iterable<Long> outputTimes) {
    List<Long> times = new ArrayList<>();
    outputTimes.forEach(times::add);
    Collections.sort(times);
    assertThat(times.size(), equalTo(MESSAGES));
    long spread = times.get(times.size() - 1) - times.get(0);
    assertThat("milliseconds from first to last output", spread, greaterThanOrEqualTo((long) ((MESSAGES - 20) / RATE * 1000)));
    int maxInAnySecond = 0;
    for (int start = 0, end = 0; start < times.size(); start++) {
      while (end < times.size() && times.get(end) < times.get(start) + 1_000) {
        end++;
      }
      maxInAnySecond = Math.max(maxInAnySecond, end - start);
    }
    assertThat("messages in the busiest second", maxInAnySecond, lessThanOrEqualTo((int) (RATE * 1.15)));
    return null;
  }

  @Test
  public void streamReadOutputsNoFasterThanTheLimit() throws Exception {
    createStream(connection, "paced", "paced.>");
    publish(connection, "paced.x", MESSAGES);

    PCollection<Long> outputTimes =
        pipeline
            .apply(NatsIO.read().withServers(SERVER.url()).withStream("paced").withStopAtEndOfStream()
                .withProcessingTime().withMaxMessagesPerSecond(RATE))
            .apply(ParDo.of(new OutputTimeFn()));

    PAssert.that(outputTimes).satisfies(NatsIORateLimitTest::assertPaced);
    pipeline.run().waitUntilFinish();
  }

  @Test
  public void coreReadOutputsNoFasterThanTheLimitWhileTheBufferHoldsTheBurst() throws Exception {
    PCollection<Long> outputTimes =
        pipeline
            .apply(NatsIO.read().withServers(SERVER.url()).withSubject("pacedcore").withMaxNumRecords(MESSAGES).withMaxMessagesPerSecond(RATE))
            .apply(ParDo.of(new OutputTimeFn()));
    PAssert.that(outputTimes).satisfies(NatsIORateLimitTest::assertPaced);

    long openedBefore = CoreSubscriptions.OPENED.get();
    Thread burst =
        new Thread(() -> {
          try {
            while (CoreSubscriptions.OPENED.get() == openedBefore) {
              Thread.sleep(20);
            }
            for (int i = 0; i < MESSAGES; i++) {
              connection.publish("pacedcore", ("b" + i).getBytes(StandardCharsets.UTF_8));
            }
            connection.flush(java.time.Duration.ofSeconds(5));
          } catch (Exception e) {
            throw new RuntimeException(e);
          }
        });
    burst.start();
    pipeline.run().waitUntilFinish();
    burst.join();
  }
}
