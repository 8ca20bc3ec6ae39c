package dev.natsio.beam;

import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.Schema.TypeName;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.values.Row;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;
import org.joda.time.ReadableInstant;

/** Event times read from a row field, for {@link NatsFormat#timestampFn} and {@link ParsePayloads#withTimestampField}. */
final class EventTimes {
  private EventTimes() {}

  /** Returns {@code field} if {@code schema} has it with a type that holds a time; throws otherwise. */
  static String checkField(Schema schema, String field) {
    if (field == null || !schema.hasField(field)) {
      throw new IllegalArgumentException(
          "The timestamp field '" + field + "' is not in the format's schema; its fields are " + schema.getFieldNames() + ".");
    }
    TypeName type = schema.getField(field).getType().getTypeName();
    if (type != TypeName.DATETIME && type != TypeName.INT64 && type != TypeName.STRING) {
      throw new IllegalArgumentException(
          "The timestamp field '" + field + "' is " + type + "; it must be DATETIME, INT64 (milliseconds since the epoch)"
              + " or STRING (ISO-8601).");
    }
    return field;
  }

  /**
   * The time in field {@code index} of {@code row}, or null when the field is null. Throws {@link
   * IllegalArgumentException} for a string that is not ISO-8601 or a time Beam cannot represent.
   */
  static @Nullable Instant timeOf(Row row, int index) {
    Object value = row.getValue(index);
    if (value == null) {
      return null;
    }
    Instant time;
    if (value instanceof ReadableInstant) {
      time = ((ReadableInstant) value).toInstant();
    } else if (value instanceof Long) {
      time = Instant.ofEpochMilli((Long) value);
    } else {
      String text = value.toString();
      try {
        time = Instant.parse(text);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(
            "field '" + row.getSchema().getField(index).getName() + "' holds '" + abbreviate(text)
                + "', which is not an ISO-8601 time");
      }
    }
    if (time.isBefore(BoundedWindow.TIMESTAMP_MIN_VALUE) || time.isAfter(BoundedWindow.TIMESTAMP_MAX_VALUE)) {
      throw new IllegalArgumentException(
          "field '" + row.getSchema().getField(index).getName() + "' holds " + time + ", outside the times Beam supports");
    }
    return time;
  }

  private static String abbreviate(String text) {
    return text.length() <= 40 ? text : text.substring(0, 40) + "...";
  }
}
