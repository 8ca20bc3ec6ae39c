package dev.natsio.beam;

import static java.util.Objects.requireNonNull;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.module.SimpleModule;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.util.RowJson;
import org.apache.beam.sdk.values.Row;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * How NATS payloads become Beam {@link Row}s and back: the format and the Beam schema of the rows.
 *
 * <pre>{@code
 * Schema schema = Schema.builder().addStringField("id").addInt64Field("amount").addDateTimeField("ts").build();
 * NatsFormat json = NatsFormat.json(schema);
 *
 * PCollection<Row> orders = pipeline
 *     .apply(NatsIO.read().withServers(url).withStream("orders")
 *         .withTimestampFn(json.timestampFn("ts"), Duration.standardSeconds(30)))   // event time, correct watermark
 *     .apply(NatsIO.parsePayloads(json).withTimestampField("ts").withMetadata());
 *
 * orders.apply(NatsIO.formatRows(json, "orders.out")).apply(NatsIO.write().withServers(url).withJetStream());
 * }</pre>
 *
 * <table>
 *   <caption>Formats</caption>
 *   <tr><th>factory</th><th>one payload holds</th><th>built on</th></tr>
 *   <tr><td>{@link #json(Schema)}</td><td>one JSON object (or one per line, {@link #withNewlineDelimited()})</td>
 *       <td>Beam's {@link RowJson}</td></tr>
 *   <tr><td>{@link #avro(Schema)}, {@link NatsAvroFormat#of NatsAvroFormat.of(org.apache.avro.Schema)}</td><td>one Avro binary datum, without
 *       a schema header</td><td>{@code AvroUtils} of {@code beam-sdks-java-extensions-avro}</td></tr>
 *   <tr><td>{@link #arrow(Schema)}</td><td>an Arrow IPC stream: a schema and any number of record batches; one
 *       row per record</td><td>{@code ArrowConversion} of {@code beam-sdks-java-extensions-arrow}</td></tr>
 *   <tr><td>{@link #string()}</td><td>UTF-8 text, as a single {@code STRING} field {@code payload} (or one per
 *       line)</td><td></td></tr>
 *   <tr><td>{@link #bytes()}</td><td>any bytes, as a single {@code BYTES} field {@code payload}</td><td></td></tr>
 * </table>
 *
 * <p>Formats are immutable and serializable. The Avro and Arrow formats need Beam's Avro or Arrow
 * extension on the class path (NatsIO declares them optional, so a JSON pipeline does not pull
 * them in); <a href="doc-files/formats.md">docs/formats.md</a> lists the artifacts.
 *
 * <p>No method of this class names an Avro or Arrow type, not even privately: runners serialize
 * formats with Java serialization, which resolves every declared method's parameter types, so a
 * single {@code avro(org.apache.avro.Schema)} overload here made JSON pipelines fail with {@code
 * NoClassDefFoundError: org/apache/avro/Schema} when Avro was absent. Factories that take Avro or
 * Arrow types live in their own classes ({@link NatsAvroFormat}).
 */
public abstract class NatsFormat implements Serializable {
  private static final long serialVersionUID = 1L;

  /** The field {@link #string()} and {@link #bytes()} put the payload in. */
  public static final String PAYLOAD_FIELD = "payload";

  /** True when a payload holds one record per line. */
  private final boolean newlineDelimited;

  NatsFormat(boolean newlineDelimited) {
    this.newlineDelimited = newlineDelimited;
  }

  // ---- Factories -------------------------------------------------------------------------------

  /**
   * JSON objects whose fields are those of {@code schema}, converted by Beam's {@link RowJson}:
   * numbers, booleans, strings, decimals, ISO-8601 date-times, arrays and nested objects. A field
   * the schema marks nullable may be missing or null; fields the schema does not name are ignored.
   */
  public static NatsFormat json(Schema schema) {
    requireNonNull(schema, "schema");
    RowJson.verifySchemaSupported(schema);
    return new Json(schema, false);
  }

  /**
   * Avro binary datums of the record schema Beam derives from {@code schema} ({@code
   * AvroUtils.toAvroSchema}). Writer and reader must use the same schema: the binary encoding
   * carries none. To start from an Avro schema instead, use {@link NatsAvroFormat#of}.
   */
  public static NatsFormat avro(Schema schema) {
    requireNonNull(schema, "schema");
    requireOnClassPath("org.apache.beam.sdk.extensions.avro.schemas.utils.AvroUtils", "avro",
        "org.apache.beam:beam-sdks-java-extensions-avro");
    return AvroFormat.of(schema);
  }

  /**
   * Arrow IPC streams (the "streaming format": a schema message, record batches, an end-of-stream
   * marker) whose schema matches {@code schema}; every record of every batch is one row. Fields may
   * be BYTE, INT16, INT32, INT64, FLOAT, DOUBLE, BOOLEAN, STRING, BYTES or DATETIME, the types
   * Beam's {@code ArrowConversion} reads as plain values.
   */
  public static NatsFormat arrow(Schema schema) {
    requireNonNull(schema, "schema");
    requireOnClassPath("org.apache.beam.sdk.extensions.arrow.ArrowConversion", "arrow",
        "org.apache.beam:beam-sdks-java-extensions-arrow and org.apache.arrow:arrow-memory-unsafe");
    return ArrowFormat.of(schema);
  }

  /** The payload as UTF-8 text, in a single {@code STRING} field named {@value #PAYLOAD_FIELD}. */
  public static NatsFormat string() {
    return string(PAYLOAD_FIELD);
  }

  /** The payload as UTF-8 text, in a single {@code STRING} field named {@code field}. */
  public static NatsFormat string(String field) {
    return new Utf8(Schema.builder().addStringField(requireField(field)).build(), false);
  }

  /** The payload as it is, in a single {@code BYTES} field named {@value #PAYLOAD_FIELD}. */
  public static NatsFormat bytes() {
    return bytes(PAYLOAD_FIELD);
  }

  /** The payload as it is, in a single {@code BYTES} field named {@code field}. */
  public static NatsFormat bytes(String field) {
    return new RawBytes(Schema.builder().addByteArrayField(requireField(field)).build(), false);
  }

  // ---- Properties ------------------------------------------------------------------------------

  /** The schema of the rows this format reads and writes. */
  public abstract Schema getSchema();

  /**
   * This format with one record per line: a payload holds any number of records, each followed by
   * {@code \n} (a {@code \r} before it is dropped too). Blank lines are skipped; a payload with no
   * record at all is a bad record. Reading splits each payload into one row per line, and a bad
   * line is a bad record on its own; writing ({@link NatsIO#formatRows}) joins up to its batch size
   * of rows per message. For JSON, strings and bytes; Avro and Arrow payloads frame themselves.
   */
  public NatsFormat withNewlineDelimited() {
    if (!canBeNewlineDelimited()) {
      throw new IllegalArgumentException(
          "NatsFormat." + name() + " cannot be newline-delimited: its binary records may contain newlines."
              + (holdsManyRecords() ? " An Arrow stream already holds many records per payload." : ""));
    }
    return copy(true);
  }

  /** True when a payload holds one record per line. */
  public boolean isNewlineDelimited() {
    return newlineDelimited;
  }

  /**
   * A timestamp function for {@link NatsIO.Read#withTimestampFn}: the time in field {@code field}
   * of the message's records, the earliest of them when a message holds several. Give the same
   * field to {@link ParsePayloads#withTimestampField}: each row then carries its own time, never
   * earlier than its message's, and the read's watermark (largest timestamp minus the read's
   * max delay) is correct for the rows.
   *
   * <p>The field may be DATETIME, INT64 (milliseconds since the epoch) or STRING (ISO-8601). A
   * message that cannot be parsed, or has no time in the field, keeps its publish time ({@link
   * NatsMessage#getTimestamp()}); the parse step then reports it. This parses each payload once
   * more, in the read.
   */
  public SerializableFunction<NatsMessage, Instant> timestampFn(String field) {
    return new FieldTimestampFn(this, EventTimes.checkField(getSchema(), field));
  }

  /** A short name for messages and display data, such as {@code json} or {@code arrow}. */
  abstract String name();

  /** True when a record's encoding cannot contain a newline byte, so lines can frame records. */
  abstract boolean canBeNewlineDelimited();

  /** True when one payload naturally holds many records (Arrow streams). */
  boolean holdsManyRecords() {
    return false;
  }

  /** True when an empty payload is a valid record (an empty string, no bytes). */
  boolean acceptsEmptyRecord() {
    return false;
  }

  /** This format with the given framing. */
  abstract NatsFormat copy(boolean newlineDelimited);

  /** A codec for one thread; not serializable, closed when done. */
  abstract Codec newCodec();

  /**
   * Decodes and encodes records of one format. A record is one payload, or one line of a
   * newline-delimited payload: {@link PayloadParser} does the framing.
   */
  interface Codec extends AutoCloseable {
    /** The rows in one record: exactly one, except for a format that {@link #holdsManyRecords()}. */
    List<Row> decode(byte[] bytes, int offset, int length) throws Exception;

    /** One record holding {@code rows}: a single row, except for a format that holds many. */
    byte[] encode(List<Row> rows) throws Exception;

    @Override
    default void close() {}
  }

  @Override
  public boolean equals(@Nullable Object other) {
    if (other == null || other.getClass() != getClass()) {
      return false;
    }
    NatsFormat that = (NatsFormat) other;
    return newlineDelimited == that.newlineDelimited && getSchema().equals(that.getSchema());
  }

  @Override
  public int hashCode() {
    return Objects.hash(getClass(), newlineDelimited, getSchema());
  }

  @Override
  public String toString() {
    return "NatsFormat." + name() + "(" + getSchema().getFields().stream().map(f -> f.getName() + " " + f.getType())
        .reduce((a, b) -> a + ", " + b).orElse("") + ")" + (newlineDelimited ? ".withNewlineDelimited()" : "");
  }

  private static String requireField(String field) {
    if (field == null || field.isEmpty()) {
      throw new IllegalArgumentException("NatsFormat needs a field name for the payload, e.g. \"payload\".");
    }
    return field;
  }

  private static void requireOnClassPath(String className, String format, String artifacts) {
    try {
      Class.forName(className, false, NatsFormat.class.getClassLoader());
    } catch (ClassNotFoundException | LinkageError e) {
      throw new IllegalStateException(
          "NatsFormat." + format + "(...) needs " + artifacts + " on the class path: add them to your pom"
              + " (NatsIO declares them optional so that other formats do not pull them in).", e);
    }
  }

  /** The problem in an exception, without the payload text some parsers quote in their messages. */
  static String problemOf(Throwable error) {
    StringBuilder problem = new StringBuilder();
    for (Throwable t = error; t != null && problem.length() < 500; t = t.getCause()) {
      String part;
      if (t instanceof JsonProcessingException) {
        JsonProcessingException json = (JsonProcessingException) t;
        part = json.getOriginalMessage()
            + (json.getLocation() == null ? ""
                : " (line " + json.getLocation().getLineNr() + ", column " + json.getLocation().getColumnNr() + ")");
      } else {
        part = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
      }
      if (problem.indexOf(part) < 0) {
        problem.append(problem.length() == 0 ? "" : ": ").append(part);
      }
      if (t.getCause() == t) {
        break;
      }
    }
    return problem.toString();
  }

  // ---- JSON ------------------------------------------------------------------------------------

  /** JSON objects through Beam's RowJson deserializer and serializer. */
  private static final class Json extends NatsFormat {
    private static final long serialVersionUID = 1L;
    private final Schema schema;

    Json(Schema schema, boolean newlineDelimited) {
      super(newlineDelimited);
      this.schema = schema;
    }

    @Override
    public Schema getSchema() {
      return schema;
    }

    @Override
    String name() {
      return "json";
    }

    @Override
    boolean canBeNewlineDelimited() {
      return true; // Serialized JSON escapes newlines inside strings.
    }

    @Override
    NatsFormat copy(boolean newlineDelimited) {
      return new Json(schema, newlineDelimited);
    }

    @Override
    Codec newCodec() {
      SimpleModule module = new SimpleModule("natsio-rows");
      module.addDeserializer(Row.class, RowJson.RowJsonDeserializer.forSchema(schema));
      module.addSerializer(Row.class, RowJson.RowJsonSerializer.forSchema(schema));
      ObjectMapper mapper = new ObjectMapper().registerModule(module)
          // A payload is one value: text after it means the payload is not what the schema says
          // (often several records that want withNewlineDelimited()).
          .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
          // Error locations would otherwise quote the payload, which may hold personal data.
          .disable(JsonParser.Feature.INCLUDE_SOURCE_IN_LOCATION);
      return new Codec() {
        @Override
        public List<Row> decode(byte[] bytes, int offset, int length) throws Exception {
          Row row = mapper.readValue(bytes, offset, length, Row.class);
          if (row == null) {
            throw new IllegalArgumentException("the JSON value is null, not an object");
          }
          return List.of(row);
        }

        @Override
        public byte[] encode(List<Row> rows) throws Exception {
          return mapper.writeValueAsBytes(single(rows));
        }
      };
    }
  }

  // ---- UTF-8 strings ---------------------------------------------------------------------------

  /** The payload as strictly decoded UTF-8 text. */
  private static final class Utf8 extends NatsFormat {
    private static final long serialVersionUID = 1L;
    private final Schema schema;

    Utf8(Schema schema, boolean newlineDelimited) {
      super(newlineDelimited);
      this.schema = schema;
    }

    @Override
    public Schema getSchema() {
      return schema;
    }

    @Override
    String name() {
      return "string";
    }

    @Override
    boolean acceptsEmptyRecord() {
      return true;
    }

    @Override
    boolean canBeNewlineDelimited() {
      return true;
    }

    @Override
    NatsFormat copy(boolean newlineDelimited) {
      return new Utf8(schema, newlineDelimited);
    }

    @Override
    Codec newCodec() {
      // Strict, unlike new String(bytes, UTF_8), which would silently replace bad bytes with U+FFFD.
      CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT);
      return new Codec() {
        @Override
        public List<Row> decode(byte[] bytes, int offset, int length) {
          ByteBuffer in = ByteBuffer.wrap(bytes, offset, length);
          CharBuffer out = CharBuffer.allocate(length);
          decoder.reset();
          CoderResult result = decoder.decode(in, out, true);
          if (!result.isError()) {
            result = decoder.flush(out);
          }
          if (result.isError()) {
            throw new IllegalArgumentException(
                "not valid UTF-8: " + (result.isMalformed() ? "malformed" : "unmappable") + " byte sequence at byte "
                    + (in.position() - offset));
          }
          out.flip();
          return List.of(Row.withSchema(schema).attachValues(out.toString()));
        }

        @Override
        public byte[] encode(List<Row> rows) {
          return single(rows).getString(0).getBytes(StandardCharsets.UTF_8);
        }
      };
    }
  }

  // ---- Raw bytes -------------------------------------------------------------------------------

  /** The payload unchanged. */
  private static final class RawBytes extends NatsFormat {
    private static final long serialVersionUID = 1L;
    private final Schema schema;

    RawBytes(Schema schema, boolean newlineDelimited) {
      super(newlineDelimited);
      this.schema = schema;
    }

    @Override
    public Schema getSchema() {
      return schema;
    }

    @Override
    String name() {
      return "bytes";
    }

    @Override
    boolean acceptsEmptyRecord() {
      return true;
    }

    @Override
    boolean canBeNewlineDelimited() {
      return true;
    }

    @Override
    NatsFormat copy(boolean newlineDelimited) {
      return new RawBytes(schema, newlineDelimited);
    }

    @Override
    Codec newCodec() {
      return new Codec() {
        @Override
        public List<Row> decode(byte[] bytes, int offset, int length) {
          byte[] copy = offset == 0 && length == bytes.length ? bytes : Arrays.copyOfRange(bytes, offset, offset + length);
          return List.of(Row.withSchema(schema).attachValues((Object) copy));
        }

        @Override
        public byte[] encode(List<Row> rows) {
          return single(rows).getBytes(0);
        }
      };
    }
  }

  static Row single(List<Row> rows) {
    if (rows.size() != 1) {
      throw new IllegalStateException("A single-record format was asked to encode " + rows.size() + " rows");
    }
    return rows.get(0);
  }

  // ---- Timestamps ------------------------------------------------------------------------------

  /** {@link #timestampFn}: the earliest time in the field among the message's records. */
  private static final class FieldTimestampFn implements SerializableFunction<NatsMessage, Instant> {
    private static final long serialVersionUID = 1L;
    private final NatsFormat format;
    private final String field;
    // The read may call this from several threads of one worker; each gets its own codec.
    private transient @Nullable ThreadLocal<PayloadParser> parsers;

    FieldTimestampFn(NatsFormat format, String field) {
      this.format = format;
      this.field = field;
    }

    @Override
    public Instant apply(NatsMessage message) {
      if (parsers == null) {
        parsers = ThreadLocal.withInitial(() -> new PayloadParser(format));
      }
      Instant earliest = null;
      int index = format.getSchema().indexOf(field);
      for (PayloadParser.Parsed record : parsers.get().parse(message.getPayload())) {
        if (record.rows == null) {
          continue;
        }
        for (Row row : record.rows) {
          Instant time;
          try {
            time = EventTimes.timeOf(row, index);
          } catch (IllegalArgumentException e) {
            continue; // Reported by the parse step, which sees the same row.
          }
          if (time != null && (earliest == null || time.isBefore(earliest))) {
            earliest = time;
          }
        }
      }
      if (earliest != null) {
        return earliest;
      }
      // Nothing to go by: publish time keeps the read's watermark moving, and the parse step reports
      // the message if it is bad.
      return message.getTimestamp() != null ? message.getTimestamp() : Instant.now();
    }

    @Override
    public boolean equals(@Nullable Object other) {
      return other instanceof FieldTimestampFn
          && ((FieldTimestampFn) other).format.equals(format)
          && ((FieldTimestampFn) other).field.equals(field);
    }

    @Override
    public int hashCode() {
      return Objects.hash(format, field);
    }
  }
}
