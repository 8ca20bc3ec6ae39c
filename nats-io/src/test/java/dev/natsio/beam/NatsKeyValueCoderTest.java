package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.equalTo;

import java.nio.charset.StandardCharsets;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.schemas.transforms.Convert;
import org.apache.beam.sdk.testing.CoderProperties;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestPipeline;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.Row;
import org.joda.time.Instant;
import org.junit.Rule;
import org.junit.Test;

/** {@link NatsKeyValueCoder}: round trips, determinism, and the schema that Convert and SQL use. */
public class NatsKeyValueCoderTest {
  @Rule public final transient TestPipeline pipeline = TestPipeline.create();

  private static final NatsKeyValue PUT =
      NatsKeyValue.of("config", "app.color", "blue".getBytes(StandardCharsets.UTF_8), 42, NatsKeyValue.Operation.PUT,
          new Instant(1_700_000_000_123L));
  private static final NatsKeyValue DELETE =
      NatsKeyValue.of("config", "app.size", new byte[0], 43, NatsKeyValue.Operation.DELETE, new Instant(1_700_000_000_456L));

  @Test
  public void entriesSurviveEncodingUnchangedInEveryContext() throws Exception {
    CoderProperties.coderDecodeEncodeEqual(NatsKeyValueCoder.of(), PUT);
    CoderProperties.coderDecodeEncodeEqual(NatsKeyValueCoder.of(), DELETE);
    CoderProperties.coderDecodeEncodeEqualInContext(NatsKeyValueCoder.of(), Coder.Context.NESTED, PUT);
  }

  @Test
  public void equalEntriesEncodeToEqualBytes() throws Exception {
    NatsKeyValueCoder.of().verifyDeterministic();
    NatsKeyValue copy = NatsKeyValue.of("config", "app.color", "blue".getBytes(StandardCharsets.UTF_8), 42,
        NatsKeyValue.Operation.PUT, new Instant(1_700_000_000_123L));
    CoderProperties.coderDeterministic(NatsKeyValueCoder.of(), PUT, copy);
  }

  @Test
  public void entriesConvertToRowsOfTheSchema() {
    PCollection<Row> rows = pipeline.apply(Create.of(PUT, DELETE)).apply(Convert.toRows());
    PAssert.that(rows).containsInAnyOrder(
        Row.withSchema(NatsKeyValueCoder.SCHEMA)
            .addValues("config", "app.color", PUT.getValue(), 42L, "PUT", PUT.getCreated()).build(),
        Row.withSchema(NatsKeyValueCoder.SCHEMA)
            .addValues("config", "app.size", new byte[0], 43L, "DELETE", DELETE.getCreated()).build());
    pipeline.run().waitUntilFinish();
    assertThat(rows.getSchema(), equalTo(NatsKeyValueCoder.SCHEMA));
  }
}
