package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static dev.natsio.beam.testing.JetStreamTestData.publish;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.NatsSourceDescriptor;
import dev.natsio.beam.testing.CollectingSink;
import dev.natsio.beam.testing.NatsTestServer;
import io.nats.client.JetStreamManagement;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.transforms.Combine;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.transforms.windowing.FixedWindows;
import org.apache.beam.sdk.transforms.windowing.IntervalWindow;
import org.apache.beam.sdk.transforms.windowing.Window;
import org.joda.time.Duration;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * {@code readSourceDescriptors()} on Flink streaming, where it is always the splittable DoFn:
 * event-time windows after it close, the last one by the idle watermark once the stream is quiet.
 */
public class FlinkReadSourceDescriptorsTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();
  private static final Duration WINDOW = Duration.standardSeconds(1);

  @Test
  public void windowsAfterReadSourceDescriptorsCloseWithTheirExactCounts() throws Exception {
    String stream = "described";
    createStream(SERVER.sharedConnection(), stream, stream + ".>");
    String id = "described-" + UUID.randomUUID();
    Pipeline pipeline = FlinkPipelines.streaming(1, 1_000);
    pipeline
        .apply(Create.of(NatsSourceDescriptor.of(stream)))
        .apply(NatsIO.readSourceDescriptors().withServers(SERVER.url()).withIdleWatermarkDelay(Duration.millis(500)))
        .apply(Window.into(FixedWindows.of(WINDOW)))
        .apply(Combine.globally(Count.<NatsMessage>combineFn()).withoutDefaults())
        .apply(ParDo.of(new WithWindowStart()))
        .apply(CollectingSink.into(id));
    PipelineResult result = pipeline.run();
    try {
      for (int batch = 0; batch < 4; batch++) {
        publish(SERVER.sharedConnection(), stream + ".x", 25);
        Thread.sleep(400); // Spreads the messages over several windows.
      }
      Map<Long, Long> expected = countsPerWindow(SERVER.sharedConnection().jetStreamManagement(), stream, 100);
      List<String> windows = CollectingSink.await(id, seen -> seen.size() >= expected.size(), 120_000);
      Map<Long, Long> actual = new TreeMap<>();
      for (String window : windows) {
        String[] parts = window.split(",");
        actual.merge(Long.parseLong(parts[0]), Long.parseLong(parts[1]), Long::sum);
      }
      assertThat(actual, equalTo(expected));
    } finally {
      result.cancel();
    }
  }

  /** Window start → messages stored in it, from the server's publish times. */
  private static Map<Long, Long> countsPerWindow(JetStreamManagement jsm, String stream, int count) throws Exception {
    Map<Long, Long> counts = new TreeMap<>();
    for (long sequence = 1; sequence <= count; sequence++) {
      long millis = jsm.getMessage(stream, sequence).getTime().toInstant().toEpochMilli();
      counts.merge(millis - Math.floorMod(millis, WINDOW.getMillis()), 1L, Long::sum);
    }
    return counts;
  }

  /** "windowStart,count". */
  private static final class WithWindowStart extends DoFn<Long, String> {
    @ProcessElement
    public void process(@Element Long count, BoundedWindow window, OutputReceiver<String> out) {
      out.output(((IntervalWindow) window).start().getMillis() + "," + count);
    }
  }
}
