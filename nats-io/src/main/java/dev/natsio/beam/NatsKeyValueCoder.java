package dev.natsio.beam;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import org.apache.beam.sdk.coders.ByteArrayCoder;
import org.apache.beam.sdk.coders.CoderProvider;
import org.apache.beam.sdk.coders.CoderProviders;
import org.apache.beam.sdk.coders.InstantCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.coders.VarIntCoder;
import org.apache.beam.sdk.coders.VarLongCoder;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.SchemaCoder;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.values.Row;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * The default coder of {@link NatsKeyValue}: bucket, key, value, revision, operation (its ordinal)
 * and creation time, each with Beam's deterministic standard coders, so equal entries encode to
 * equal bytes and entries can be keys. Like {@link NatsMessageCoder} it is a {@link SchemaCoder},
 * so the collection has the schema {@link #SCHEMA} without a slower generic row coder.
 */
public final class NatsKeyValueCoder extends SchemaCoder<NatsKeyValue> {
  /** The row form of an entry; the operation is its name: PUT, DELETE or PURGE. */
  public static final Schema SCHEMA =
      Schema.builder()
          .addStringField("bucket")
          .addStringField("key")
          .addByteArrayField("value")
          .addInt64Field("revision")
          .addStringField("operation")
          .addDateTimeField("created")
          .build();

  private static final NatsKeyValueCoder INSTANCE = new NatsKeyValueCoder();
  private static final NatsKeyValue.Operation[] OPERATIONS = NatsKeyValue.Operation.values();

  private NatsKeyValueCoder() {
    super(SCHEMA, TypeDescriptor.of(NatsKeyValue.class), new ToRow(), new FromRow());
  }

  /** The coder; it has no state, so every call returns the same instance. */
  public static NatsKeyValueCoder of() {
    return INSTANCE;
  }

  @Override
  public void encode(NatsKeyValue entry, OutputStream out) throws IOException {
    StringUtf8Coder.of().encode(entry.getBucket(), out);
    StringUtf8Coder.of().encode(entry.getKey(), out);
    ByteArrayCoder.of().encode(entry.getValue(), out);
    VarLongCoder.of().encode(entry.getRevision(), out);
    VarIntCoder.of().encode(entry.getOperation().ordinal(), out);
    InstantCoder.of().encode(entry.getCreated(), out);
  }

  @Override
  public NatsKeyValue decode(InputStream in) throws IOException {
    String bucket = StringUtf8Coder.of().decode(in);
    String key = StringUtf8Coder.of().decode(in);
    byte[] value = ByteArrayCoder.of().decode(in);
    long revision = VarLongCoder.of().decode(in);
    int operation = VarIntCoder.of().decode(in);
    if (operation < 0 || operation >= OPERATIONS.length) {
      throw new IOException("NatsKeyValue operation " + operation + ": not a NatsKeyValueCoder encoding");
    }
    Instant created = InstantCoder.of().decode(in);
    return NatsKeyValue.of(bucket, key, value, revision, OPERATIONS[operation], created);
  }

  @Override
  public void verifyDeterministic() {
    // Deterministic: fixed field order, each field with a deterministic standard coder.
  }

  @Override
  public boolean consistentWithEquals() {
    return true;
  }

  @Override
  public String toString() {
    return "NatsKeyValueCoder";
  }

  @Override
  public boolean equals(@Nullable Object other) {
    return other instanceof NatsKeyValueCoder;
  }

  @Override
  public int hashCode() {
    return NatsKeyValueCoder.class.hashCode();
  }

  /** How {@code @DefaultCoder} on {@link NatsKeyValue} finds this coder. */
  public static CoderProvider getCoderProvider() {
    return CoderProviders.forCoder(TypeDescriptor.of(NatsKeyValue.class), INSTANCE);
  }

  private static final class ToRow implements SerializableFunction<NatsKeyValue, Row> {
    @Override
    public Row apply(NatsKeyValue entry) {
      return Row.withSchema(SCHEMA)
          .addValues(entry.getBucket(), entry.getKey(), entry.getValue(), entry.getRevision(),
              entry.getOperation().name(), entry.getCreated())
          .build();
    }

    @Override
    public boolean equals(@Nullable Object other) {
      return other instanceof ToRow;
    }

    @Override
    public int hashCode() {
      return ToRow.class.hashCode();
    }
  }

  private static final class FromRow implements SerializableFunction<Row, NatsKeyValue> {
    @Override
    public NatsKeyValue apply(Row row) {
      return NatsKeyValue.of(
          row.getString("bucket"),
          row.getString("key"),
          row.getBytes("value"),
          row.getInt64("revision"),
          NatsKeyValue.Operation.valueOf(row.getString("operation")),
          new Instant(row.getDateTime("created")));
    }

    @Override
    public boolean equals(@Nullable Object other) {
      return other instanceof FromRow;
    }

    @Override
    public int hashCode() {
      return FromRow.class.hashCode();
    }
  }
}
