package dev.natsio.beam;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import org.apache.arrow.flatbuf.Message;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.SmallIntVector;
import org.apache.arrow.vector.TimeStampMilliTZVector;
import org.apache.arrow.vector.TinyIntVector;
import org.apache.arrow.vector.VarBinaryVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowStreamReader;
import org.apache.arrow.vector.ipc.ArrowStreamWriter;
import org.apache.arrow.vector.types.FloatingPointPrecision;
import org.apache.arrow.vector.types.TimeUnit;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.beam.sdk.extensions.arrow.ArrowConversion;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.Schema.TypeName;
import org.apache.beam.sdk.values.Row;
import org.joda.time.ReadableInstant;

/**
 * {@link NatsFormat#arrow}: each payload is an Arrow IPC stream, and every record of its batches is
 * a row. Kept out of {@link NatsFormat} so that Arrow classes load only when this format is used:
 * the Arrow extension is an optional dependency.
 *
 * <h2>Reading</h2>
 *
 * <p>Beam's {@link ArrowConversion} translates the stream's schema and turns each batch into rows.
 * Its rows read lazily from the batch's vectors, which the next batch overwrites, so each row is
 * copied out before the next batch loads. A stream whose schema is not the format's (names and
 * types in order; nullability aside) is a bad record. The IPC format makes the end-of-stream marker
 * optional, but a stream cut at a batch boundary would otherwise look whole and lose records
 * silently; every Arrow writer's close writes the marker, so a payload without it is a bad record.
 * Arrow's reader allocates each message at the length its prefix announces, before reading it, so
 * garbage could ask for gigabytes: {@link #checkFraming} first walks the stream's message prefixes
 * and refuses any message that would run past the payload.
 *
 * <h2>Writing</h2>
 *
 * <p>Beam has no Row-to-Arrow conversion, so this class writes one: flat schemas of the types
 * {@link ArrowConversion} reads back as plain values, one record batch per payload, then the
 * end-of-stream marker. DATETIME is written as a millisecond timestamp in UTC.
 */
final class ArrowFormat extends NatsFormat {
  private static final long serialVersionUID = 1L;
  private static final Set<TypeName> SUPPORTED = EnumSet.of(TypeName.BYTE, TypeName.INT16, TypeName.INT32,
      TypeName.INT64, TypeName.FLOAT, TypeName.DOUBLE, TypeName.BOOLEAN, TypeName.STRING, TypeName.BYTES,
      TypeName.DATETIME);
  /** The IPC end-of-stream marker: the continuation token 0xFFFFFFFF, then a metadata length of 0. */
  private static final byte[] END_OF_STREAM = {-1, -1, -1, -1, 0, 0, 0, 0};

  private final Schema schema;

  private ArrowFormat(Schema schema) {
    super(false);
    this.schema = schema;
  }

  static NatsFormat of(Schema schema) {
    List<String> unsupported = new ArrayList<>();
    for (Schema.Field field : schema.getFields()) {
      if (!SUPPORTED.contains(field.getType().getTypeName())) {
        unsupported.add(field.getName() + " " + field.getType().getTypeName());
      }
    }
    if (!unsupported.isEmpty()) {
      throw new IllegalArgumentException(
          "NatsFormat.arrow supports flat schemas of " + SUPPORTED + "; these fields are not: " + unsupported + ".");
    }
    return new ArrowFormat(schema);
  }

  @Override
  public Schema getSchema() {
    return schema;
  }

  @Override
  String name() {
    return "arrow";
  }

  @Override
  boolean canBeNewlineDelimited() {
    return false;
  }

  @Override
  boolean holdsManyRecords() {
    return true;
  }

  @Override
  NatsFormat copy(boolean newlineDelimited) {
    return this;
  }

  /** One allocator for the JVM; each decode or encode takes a child, which checks it freed everything. */
  private static final class Memory {
    static final RootAllocator ROOT = new RootAllocator(Long.MAX_VALUE);
  }

  /** The allocator, or a clear error where Arrow's memory cannot work, here rather than at the first message. */
  private static RootAllocator root() {
    try {
      return Memory.ROOT;
    } catch (ExceptionInInitializerError | NoClassDefFoundError e) {
      throw new IllegalStateException(
          "NatsFormat.arrow: Arrow's memory could not start. On Java 17 or newer the JVM needs"
              + " --add-opens=java.base/java.nio=ALL-UNNAMED, and the class path needs an allocation manager such as"
              + " org.apache.arrow:arrow-memory-unsafe.", e);
    }
  }

  @Override
  Codec newCodec() {
    RootAllocator root = root();
    org.apache.arrow.vector.types.pojo.Schema arrowSchema = toArrowSchema(schema);
    return new Codec() {
      @Override
      public List<Row> decode(byte[] bytes, int offset, int length) throws Exception {
        if (length < END_OF_STREAM.length
            || !Arrays.equals(bytes, offset + length - END_OF_STREAM.length, offset + length, END_OF_STREAM, 0, END_OF_STREAM.length)) {
          throw new IllegalArgumentException(
              "the Arrow IPC stream has no end-of-stream marker: it was cut short or not closed by its writer");
        }
        checkFraming(bytes, offset, length);
        List<Row> rows = new ArrayList<>();
        try (BufferAllocator allocator = root.newChildAllocator("natsio-arrow-read", 0, Long.MAX_VALUE);
            ArrowStreamReader reader = new ArrowStreamReader(new ByteArrayInputStream(bytes, offset, length), allocator)) {
          VectorSchemaRoot root = reader.getVectorSchemaRoot();
          checkSchema(ArrowConversion.ArrowSchemaTranslator.toBeamSchema(root.getSchema()));
          while (reader.loadNextBatch()) {
            // Not closed: closing the iterator would close the reader's root, which the reader owns.
            ArrowConversion.RecordBatchRowIterator batch = ArrowConversion.rowsFromRecordBatch(schema, root);
            while (batch.hasNext()) {
              // Copies the lazy row's values; the builder also turns Arrow's zoned DateTimes into Instants.
              rows.add(Row.withSchema(schema).addValues(batch.next().getValues()).build());
            }
          }
        }
        return rows;
      }

      @Override
      public byte[] encode(List<Row> rows) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (BufferAllocator allocator = root.newChildAllocator("natsio-arrow-write", 0, Long.MAX_VALUE);
            VectorSchemaRoot root = VectorSchemaRoot.create(arrowSchema, allocator);
            ArrowStreamWriter writer = new ArrowStreamWriter(root, null, Channels.newChannel(out))) {
          writer.start();
          root.allocateNew();
          for (int column = 0; column < schema.getFieldCount(); column++) {
            FieldVector vector = root.getVector(column);
            for (int i = 0; i < rows.size(); i++) {
              set(vector, i, rows.get(i).getValue(schema.getField(column).getName()));
            }
          }
          root.setRowCount(rows.size());
          writer.writeBatch();
          writer.end();
        }
        return out.toByteArray();
      }
    };
  }

  /**
   * Walks the IPC messages of a payload (an optional 0xFFFFFFFF continuation token, a little-endian
   * metadata length, the flatbuffer metadata, then the body whose length the metadata gives) up to
   * the end-of-stream marker, and throws if any part would run past the payload.
   */
  static void checkFraming(byte[] bytes, int offset, int length) {
    ByteBuffer buffer = ByteBuffer.wrap(bytes, offset, length).slice().order(ByteOrder.LITTLE_ENDIAN);
    int position = 0;
    while (true) {
      if (position + 4 > length) {
        throw new IllegalArgumentException("the Arrow IPC stream ends inside a message prefix at byte " + position);
      }
      int metadataLength = buffer.getInt(position);
      position += 4;
      if (metadataLength == -1) { // The continuation token; the length follows.
        if (position + 4 > length) {
          throw new IllegalArgumentException("the Arrow IPC stream ends inside a message prefix at byte " + position);
        }
        metadataLength = buffer.getInt(position);
        position += 4;
      }
      if (metadataLength == 0) {
        return; // End of stream.
      }
      if (metadataLength < 0 || metadataLength > length - position) {
        throw new IllegalArgumentException(
            "the Arrow IPC stream announces a message of " + metadataLength + " bytes at byte " + position + " of "
                + length + ": it is cut short or not an Arrow stream");
      }
      long bodyLength;
      try {
        ByteBuffer metadata = buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        metadata.position(position).limit(position + metadataLength);
        bodyLength = Message.getRootAsMessage(metadata.slice().order(ByteOrder.LITTLE_ENDIAN)).bodyLength();
      } catch (RuntimeException e) {
        throw new IllegalArgumentException("the Arrow IPC message at byte " + position + " has unreadable metadata", e);
      }
      position += metadataLength;
      if (bodyLength < 0 || bodyLength > length - position) {
        throw new IllegalArgumentException(
            "the Arrow IPC message at byte " + position + " announces a body of " + bodyLength + " bytes, past the end of the"
                + " payload: it is cut short or not an Arrow stream");
      }
      position += (int) bodyLength;
    }
  }

  private void checkSchema(Schema actual) {
    boolean same = actual.getFieldCount() == schema.getFieldCount();
    for (int i = 0; same && i < schema.getFieldCount(); i++) {
      same = actual.getField(i).getName().equals(schema.getField(i).getName())
          && actual.getField(i).getType().withNullable(false).equals(schema.getField(i).getType().withNullable(false));
    }
    if (!same) {
      throw new IllegalArgumentException(
          "the Arrow stream's schema " + describe(actual) + " is not the format's " + describe(schema));
    }
  }

  private static String describe(Schema schema) {
    List<String> fields = new ArrayList<>();
    schema.getFields().forEach(f -> fields.add(f.getName() + " " + f.getType().getTypeName()));
    return fields.toString();
  }

  private static org.apache.arrow.vector.types.pojo.Schema toArrowSchema(Schema schema) {
    List<Field> fields = new ArrayList<>();
    for (Schema.Field field : schema.getFields()) {
      fields.add(new Field(field.getName(), new FieldType(field.getType().getNullable(), arrowType(field.getType().getTypeName()), null), null));
    }
    return new org.apache.arrow.vector.types.pojo.Schema(fields);
  }

  /** The inverse of ArrowConversion's type translation, for the types it reads as plain values. */
  private static ArrowType arrowType(TypeName type) {
    switch (type) {
      case BYTE:
        return new ArrowType.Int(8, true);
      case INT16:
        return new ArrowType.Int(16, true);
      case INT32:
        return new ArrowType.Int(32, true);
      case INT64:
        return new ArrowType.Int(64, true);
      case FLOAT:
        return new ArrowType.FloatingPoint(FloatingPointPrecision.SINGLE);
      case DOUBLE:
        return new ArrowType.FloatingPoint(FloatingPointPrecision.DOUBLE);
      case BOOLEAN:
        return ArrowType.Bool.INSTANCE;
      case STRING:
        return ArrowType.Utf8.INSTANCE;
      case BYTES:
        return ArrowType.Binary.INSTANCE;
      case DATETIME:
        return new ArrowType.Timestamp(TimeUnit.MILLISECOND, "UTC");
      default:
        throw new IllegalArgumentException("NatsFormat.arrow does not write " + type);
    }
  }

  private static void set(FieldVector vector, int index, Object value) {
    if (value == null) {
      vector.setNull(index);
    } else if (vector instanceof TinyIntVector) {
      ((TinyIntVector) vector).setSafe(index, (Byte) value);
    } else if (vector instanceof SmallIntVector) {
      ((SmallIntVector) vector).setSafe(index, (Short) value);
    } else if (vector instanceof IntVector) {
      ((IntVector) vector).setSafe(index, (Integer) value);
    } else if (vector instanceof BigIntVector) {
      ((BigIntVector) vector).setSafe(index, (Long) value);
    } else if (vector instanceof Float4Vector) {
      ((Float4Vector) vector).setSafe(index, (Float) value);
    } else if (vector instanceof Float8Vector) {
      ((Float8Vector) vector).setSafe(index, (Double) value);
    } else if (vector instanceof BitVector) {
      ((BitVector) vector).setSafe(index, ((Boolean) value) ? 1 : 0);
    } else if (vector instanceof VarCharVector) {
      ((VarCharVector) vector).setSafe(index, ((String) value).getBytes(java.nio.charset.StandardCharsets.UTF_8));
    } else if (vector instanceof VarBinaryVector) {
      ((VarBinaryVector) vector).setSafe(index, (byte[]) value);
    } else if (vector instanceof TimeStampMilliTZVector) {
      ((TimeStampMilliTZVector) vector).setSafe(index, ((ReadableInstant) value).getMillis());
    } else {
      throw new IllegalStateException("No Arrow writer for " + vector.getClass().getSimpleName());
    }
  }
}
