package dev.natsio.beam.schematransforms;

import dev.natsio.beam.NatsAvroFormat;
import dev.natsio.beam.NatsFormat;
import java.util.List;
import java.util.Locale;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.Schema.FieldType;
import org.apache.beam.sdk.schemas.Schema.TypeName;
import org.apache.beam.sdk.schemas.utils.JsonUtils;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * Picks a {@link NatsFormat} by name ({@code json}, {@code avro}, {@code arrow}, {@code string},
 * {@code bytes}) for configurations that name formats as text: the schema transforms and the Beam
 * SQL table provider ({@code dev.natsio.beam.sql}), so both accept the same names and say the same
 * thing about a wrong one.
 *
 * <p>Two ways to get a schema: from rows that already have one (a SQL table's columns, the input of
 * a write), or from text, as Beam's Kafka provider takes it: a JSON schema for {@code json} and
 * {@code arrow}, an Avro schema in JSON for {@code avro}. {@code string} and {@code bytes} hold one
 * field and need no schema. Avro types are only touched for the Avro format, in {@link AvroSchemas}.
 */
public final class RowFormats {
  /** The format names, as configurations spell them. */
  public static final List<String> NAMES = List.of("json", "avro", "arrow", "string", "bytes");

  private RowFormats() {}

  /**
   * The format {@code name} for rows of {@code schema}. For {@code string} and {@code bytes} the
   * schema must have exactly one field, of type STRING or BYTES, which holds the payload.
   */
  public static NatsFormat forSchema(String name, Schema schema) {
    switch (checkName(name)) {
      case "json":
        return NatsFormat.json(schema);
      case "avro":
        return NatsFormat.avro(schema);
      case "arrow":
        return NatsFormat.arrow(schema);
      case "string":
        return NatsFormat.string(singleField(schema, TypeName.STRING, "string"));
      default:
        return NatsFormat.bytes(singleField(schema, TypeName.BYTES, "bytes"));
    }
  }

  /**
   * The format {@code name} with the schema in {@code schemaText}: a JSON schema (json, arrow) or an
   * Avro record schema in JSON (avro); none for string and bytes, whose rows have the one field
   * {@value NatsFormat#PAYLOAD_FIELD}.
   */
  public static NatsFormat forSchemaText(String name, @Nullable String schemaText) {
    String format = checkName(name);
    boolean needsSchema = !format.equals("string") && !format.equals("bytes");
    if (needsSchema && (schemaText == null || schemaText.isBlank())) {
      throw new IllegalArgumentException(
          "The " + format + " format needs a schema: "
              + (format.equals("avro") ? "an Avro record schema in JSON" : "a JSON schema (https://json-schema.org)")
              + ", such as {\"type\": \"object\", \"properties\": {\"id\": {\"type\": \"integer\"}}}.");
    }
    if (!needsSchema && schemaText != null && !schemaText.isBlank()) {
      throw new IllegalArgumentException(
          "The " + format + " format takes no schema: its rows have one field '" + NatsFormat.PAYLOAD_FIELD
              + "'. Remove the schema, or use json or avro.");
    }
    switch (format) {
      case "json":
        return NatsFormat.json(jsonSchema(schemaText));
      case "arrow":
        return NatsFormat.arrow(jsonSchema(schemaText));
      case "avro":
        return AvroSchemas.format(schemaText);
      case "string":
        return NatsFormat.string();
      default:
        return NatsFormat.bytes();
    }
  }

  private static String checkName(@Nullable String name) {
    String format = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
    if (!NAMES.contains(format)) {
      throw new IllegalArgumentException("Unknown NATS payload format '" + name + "': use one of " + NAMES + ".");
    }
    return format;
  }

  private static Schema jsonSchema(String schemaText) {
    try {
      return JsonUtils.beamSchemaFromJsonSchema(schemaText);
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("The schema is not a JSON schema Beam can turn into a row schema: " + e.getMessage(), e);
    }
  }

  private static String singleField(Schema schema, TypeName type, String format) {
    if (schema.getFieldCount() != 1 || schema.getField(0).getType().getTypeName() != type) {
      throw new IllegalArgumentException(
          "The " + format + " format holds one " + type + " field, the payload; these rows have " + describe(schema)
              + ". Use json, avro or arrow for rows of several fields.");
    }
    return schema.getField(0).getName();
  }

  private static String describe(Schema schema) {
    StringBuilder fields = new StringBuilder("(");
    for (Schema.Field field : schema.getFields()) {
      FieldType type = field.getType();
      fields.append(fields.length() > 1 ? ", " : "").append(field.getName()).append(' ').append(type.getTypeName());
    }
    return fields.append(')').toString();
  }

  /** Avro schema text to format; a class of its own so other formats never load Avro's types. */
  private static final class AvroSchemas {
    static NatsFormat format(String schemaText) {
      org.apache.avro.Schema avroSchema;
      try {
        avroSchema = new org.apache.avro.Schema.Parser().parse(schemaText);
      } catch (RuntimeException e) {
        throw new IllegalArgumentException("The schema is not an Avro schema in JSON: " + e.getMessage(), e);
      }
      return NatsAvroFormat.of(avroSchema);
    }
  }
}
