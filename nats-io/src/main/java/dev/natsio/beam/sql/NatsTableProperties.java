package dev.natsio.beam.sql;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.natsio.beam.schematransforms.NatsReadSchemaTransformConfiguration;
import dev.natsio.beam.schematransforms.RowFormats;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * The {@code TBLPROPERTIES} of a {@code TYPE nats} table, checked: every key must be one of {@link
 * #KEYS} with a value of its type, otherwise the table is refused with a message that lists the
 * valid keys and their types. The keys are the {@code NatsIO} builder's names.
 */
final class NatsTableProperties implements java.io.Serializable {
  private static final long serialVersionUID = 1L;
  /** What a key's value must be. */
  private enum Kind {
    STRING("a string"),
    INTEGER("an integer"),
    BOOLEAN("true or false"),
    STRING_ARRAY("an array of strings");

    final String description;

    Kind(String description) {
      this.description = description;
    }

    boolean accepts(JsonNode value) {
      switch (this) {
        case STRING:
          return value.isTextual();
        case INTEGER:
          return value.isIntegralNumber() && value.canConvertToLong();
        case BOOLEAN:
          return value.isBoolean();
        default:
          if (!value.isArray()) {
            return false;
          }
          for (JsonNode item : value) {
            if (!item.isTextual()) {
              return false;
            }
          }
          return true;
      }
    }
  }

  /** The valid keys, in the order error messages list them. */
  static final Map<String, Kind> KEYS = new LinkedHashMap<>();

  static {
    KEYS.put("stream", Kind.STRING);
    KEYS.put("filterSubjects", Kind.STRING_ARRAY);
    KEYS.put("startSequence", Kind.INTEGER);
    KEYS.put("startTime", Kind.STRING);
    KEYS.put("stopSequence", Kind.INTEGER);
    KEYS.put("stopAtEndOfStream", Kind.BOOLEAN);
    KEYS.put("subject", Kind.STRING);
    KEYS.put("queueGroup", Kind.STRING);
    KEYS.put("consumer", Kind.STRING);
    KEYS.put("format", Kind.STRING);
    KEYS.put("badRecords", Kind.STRING);
    KEYS.put("jetStream", Kind.BOOLEAN);
    KEYS.put("messageIdColumn", Kind.STRING);
  }

  private final String table;
  private final Map<String, JsonNode> values;

  private NatsTableProperties(String table, Map<String, JsonNode> values) {
    this.table = table;
    this.values = values;
  }

  /** Checks {@code properties} of table {@code table}; null means none. */
  static NatsTableProperties parse(String table, @Nullable ObjectNode properties) {
    Map<String, JsonNode> values = new LinkedHashMap<>();
    if (properties != null) {
      for (Iterator<Map.Entry<String, JsonNode>> it = properties.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> entry = it.next();
        Kind kind = KEYS.get(entry.getKey());
        if (kind == null) {
          throw new IllegalArgumentException(
              "NATS table '" + table + "': unknown TBLPROPERTIES key '" + entry.getKey() + "'. Valid keys: " + validKeys() + ".");
        }
        if (!kind.accepts(entry.getValue())) {
          throw new IllegalArgumentException(
              "NATS table '" + table + "': TBLPROPERTIES '" + entry.getKey() + "' must be " + kind.description + ", not "
                  + entry.getValue() + ". Valid keys: " + validKeys() + ".");
        }
        values.put(entry.getKey(), entry.getValue());
      }
    }
    NatsTableProperties parsed = new NatsTableProperties(table, values);
    parsed.format(); // checks the name
    parsed.dropBadRecords();
    return parsed;
  }

  static String validKeys() {
    List<String> keys = new ArrayList<>();
    KEYS.forEach((key, kind) -> keys.add(key + " (" + kind.description + ")"));
    return String.join(", ", keys);
  }

  @Nullable String string(String key) {
    JsonNode value = values.get(key);
    return value == null ? null : value.asText();
  }

  @Nullable Long integer(String key) {
    JsonNode value = values.get(key);
    return value == null ? null : value.asLong();
  }

  boolean flag(String key) {
    JsonNode value = values.get(key);
    return value != null && value.asBoolean();
  }

  @Nullable List<String> strings(String key) {
    JsonNode value = values.get(key);
    if (value == null) {
      return null;
    }
    List<String> items = new ArrayList<>();
    value.forEach(item -> items.add(item.asText()));
    return items;
  }

  /** The payload format's name, json by default. */
  String format() {
    String format = string("format");
    if (format == null) {
      return "json";
    }
    if (!RowFormats.NAMES.contains(format)) {
      throw new IllegalArgumentException(
          "NATS table '" + table + "': TBLPROPERTIES format '" + format + "' is not one of " + RowFormats.NAMES + ".");
    }
    return format;
  }

  /** True for {@code "badRecords": "drop"}; false for fail, the default. */
  boolean dropBadRecords() {
    String policy = string("badRecords");
    if (policy == null || policy.equals("fail")) {
      return false;
    }
    if (policy.equals("drop")) {
      return true;
    }
    throw new IllegalArgumentException(
        "NATS table '" + table + "': TBLPROPERTIES badRecords '" + policy + "' must be \"fail\" (the default: a payload"
            + " that does not parse fails the query) or \"drop\" (it is dropped and counted).");
  }

  /** True when the read ends by itself: a stop sequence, or the end of the stream. */
  boolean bounded() {
    return values.containsKey("stopSequence") || flag("stopAtEndOfStream");
  }

  /**
   * The read these properties describe. {@code subject} is the Core subject to read only in a table
   * without a stream; with a stream it is only where {@code INSERT INTO} publishes.
   */
  NatsReadSchemaTransformConfiguration readConfiguration(String servers) {
    String stream = string("stream");
    return NatsReadSchemaTransformConfiguration.builder()
        .setServers(servers)
        .setStream(stream)
        .setFilterSubjects(strings("filterSubjects"))
        .setSubject(stream == null ? string("subject") : null)
        .setQueueGroup(string("queueGroup"))
        .setConsumer(string("consumer"))
        .setStartSequence(integer("startSequence"))
        .setStartTime(string("startTime"))
        .setStopSequence(integer("stopSequence"))
        .setStopAtEndOfStream(values.containsKey("stopAtEndOfStream") ? flag("stopAtEndOfStream") : null)
        .setFormat(format())
        .build();
  }
}
