package dev.natsio.beam;

import static java.util.Objects.requireNonNull;

/**
 * The Avro format built from an Avro schema: {@code NatsAvroFormat.of(avroSchema)}. Needs {@code
 * org.apache.beam:beam-sdks-java-extensions-avro} on the class path.
 *
 * <pre>{@code
 * org.apache.avro.Schema avroSchema = new org.apache.avro.Schema.Parser().parse(orderSchemaJson);
 * PCollection<Row> rows = messages.apply(NatsIO.parsePayloads(NatsAvroFormat.of(avroSchema)));
 * }</pre>
 *
 * <p>It is a class of its own, not an overload of {@link NatsFormat#avro(org.apache.beam.sdk.schemas.Schema)},
 * because a method that names {@code org.apache.avro.Schema} in its signature makes its whole class
 * unusable without Avro: Java serialization, which runners use for every transform, resolves the
 * parameter types of all the class's methods. {@link NatsFormat} must load in pipelines that never
 * use Avro.
 */
public final class NatsAvroFormat {
  private NatsAvroFormat() {}

  /**
   * Avro binary datums of the record schema {@code avroSchema}; rows get the Beam schema {@code
   * AvroUtils.toBeamSchema(avroSchema)}. Writer and reader must use the same schema: the binary
   * encoding carries none.
   *
   * @param avroSchema an Avro schema of type {@code RECORD}
   * @return the format, for {@link NatsIO#parsePayloads} and {@link NatsIO#formatRows}
   */
  public static NatsFormat of(org.apache.avro.Schema avroSchema) {
    requireNonNull(avroSchema, "avroSchema");
    return AvroFormat.of(avroSchema);
  }
}
