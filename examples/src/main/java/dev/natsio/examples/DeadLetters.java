package dev.natsio.examples;

import dev.natsio.beam.NatsFormat;
import dev.natsio.beam.NatsIO;
import dev.natsio.beam.NatsMessage;
import dev.natsio.beam.NatsMessageCoder;
import io.nats.client.Connection;
import io.nats.client.JetStream;
import io.nats.client.JetStreamSubscription;
import io.nats.client.Message;
import io.nats.client.Nats;
import io.nats.client.PullSubscribeOptions;
import io.nats.client.api.StreamConfiguration;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.errorhandling.BadRecord;
import org.apache.beam.sdk.transforms.errorhandling.ErrorHandler.BadRecordErrorHandler;
import org.apache.beam.sdk.util.CoderUtils;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptor;

/**
 * Bad records to a dead-letter subject through Beam's bad-record error handler: payloads that do
 * not parse are published, unchanged and with the reason in a header, to {@code
 * example.deadletter}, stored by the stream {@code example_deadletter}, while the good ones go on.
 *
 * <pre>
 * scripts/example.sh DeadLetters
 * </pre>
 */
public final class DeadLetters {
  static final int GOOD = 10;
  static final String REASON_HEADER = "Dead-Letter-Reason";
  private static final Schema ORDER = Schema.builder().addInt64Field("id").addDoubleField("amount").build();

  private DeadLetters() {}

  /** Publishes good and bad orders, parses them, prints the dead letters; {@code args} are Beam options. */
  public static void main(String[] args) throws Exception {
    ExampleOptions options = PipelineOptionsFactory.fromArgs(args).withValidation().as(ExampleOptions.class);
    String url = options.getNatsUrl();
    try (Connection connection = Nats.connect(url)) {
      Streams.recreate(connection, StreamConfiguration.builder().name("example_incoming").subjects("example.incoming").build());
      Streams.recreate(connection, StreamConfiguration.builder().name("example_deadletter").subjects("example.deadletter").build());
      JetStream js = connection.jetStream();
      for (int id = 0; id < GOOD; id++) {
        js.publish("example.incoming", String.format("{\"id\": %d, \"amount\": %d.5}", id, id).getBytes(StandardCharsets.UTF_8));
      }
      js.publish("example.incoming", "{\"id\": 99, \"amount\": \"lots\"}".getBytes(StandardCharsets.UTF_8));
      js.publish("example.incoming", "<order id=\"100\"/>".getBytes(StandardCharsets.UTF_8));
      System.out.printf("Published %d good and 2 bad orders to stream 'example_incoming'%n", GOOD);

      Pipeline pipeline = Pipeline.create(options);
      try (BadRecordErrorHandler<?> deadLetters = pipeline.registerBadRecordErrorHandler(new ToDeadLetterSubject(url))) {
        pipeline
            .apply("Read", NatsIO.read().withServers(url).withStream("example_incoming").withStopAtEndOfStream())
            .apply("Parse", NatsIO.parsePayloads(NatsFormat.json(ORDER)).withBadRecordErrorHandler(deadLetters))
            .apply("Count good", Count.globally())
            .apply("Print", ParDo.of(new DoFn<Long, Void>() {
              @ProcessElement
              public void process(@Element Long count) {
                System.out.printf("Parsed %d good orders%n", count);
              }
            }));
      }
      pipeline.run().waitUntilFinish();

      JetStreamSubscription sub = js.subscribe("example.deadletter", PullSubscribeOptions.builder().build());
      List<Message> letters = sub.fetch(100, Duration.ofSeconds(2));
      for (Message letter : letters) {
        System.out.printf("Dead letter: %s | %s%n", new String(letter.getData(), StandardCharsets.UTF_8),
            letter.getHeaders().getFirst(REASON_HEADER));
      }
      sub.unsubscribe();
    }
  }

  /** The error handler's sink: each bad record's original message, republished with its reason. */
  static final class ToDeadLetterSubject extends PTransform<PCollection<BadRecord>, PCollection<?>> {
    private final String url;

    ToDeadLetterSubject(String url) {
      this.url = url;
    }

    @Override
    public PCollection<?> expand(PCollection<BadRecord> badRecords) {
      return badRecords
          .apply("To dead letter", MapElements.into(TypeDescriptor.of(NatsMessage.class)).via((BadRecord bad) -> {
            NatsMessage original;
            try {
              original = CoderUtils.decodeFromByteArray(NatsMessageCoder.of(), bad.getRecord().getEncodedRecord());
            } catch (Exception e) {
              throw new IllegalStateException("A bad record that is not a NatsMessage", e);
            }
            Map<String, List<String>> headers = new HashMap<>(original.getHeaders());
            headers.put(REASON_HEADER, List.of(bad.getFailure().getDescription()));
            return NatsMessage.create("example.deadletter", original.getPayload(), headers);
          }))
          .setCoder(NatsMessageCoder.of())
          .apply("Publish", NatsIO.write().withServers(url).withJetStream())
          .getPublishResults();
    }
  }
}
