package dev.natsio.beam;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.beam.sdk.values.Row;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * Frames payloads into records and runs a {@link NatsFormat}'s codec over them, for one thread.
 *
 * <p>Parsing never throws for bad data: each record comes back with its rows or with the problem,
 * so the caller applies its bad-record policy per record. A newline-delimited payload is split on
 * {@code \n} (dropping a {@code \r} before it), blank lines are skipped, and each line is a record
 * of its own, so one bad line does not lose the good ones around it. An empty payload is a bad
 * record for every format that cannot represent one (JSON, Avro, Arrow, and any newline-delimited
 * format), so an empty message never disappears without a trace.
 */
final class PayloadParser implements AutoCloseable {
  private final NatsFormat format;
  private final NatsFormat.Codec codec;

  PayloadParser(NatsFormat format) {
    this.format = format;
    this.codec = format.newCodec();
  }

  /** One record of a payload: its rows, or why it has none. */
  static final class Parsed {
    /** The 1-based line of a newline-delimited payload; 0 for a whole payload. */
    final int line;
    /** The record's bytes: the line, or the whole payload. */
    final byte[] bytes;
    final @Nullable List<Row> rows;
    final @Nullable Exception error;

    private Parsed(int line, byte[] bytes, @Nullable List<Row> rows, @Nullable Exception error) {
      this.line = line;
      this.bytes = bytes;
      this.rows = rows;
      this.error = error;
    }

    /** What went wrong, for error messages: no payload content. */
    String problem() {
      return error == null ? "" : NatsFormat.problemOf(error);
    }
  }

  /** The records of {@code payload}, in order. */
  List<Parsed> parse(byte[] payload) {
    if (!format.isNewlineDelimited()) {
      if (payload.length == 0 && !format.acceptsEmptyRecord()) {
        return List.of(new Parsed(0, payload, null, new IllegalArgumentException("the payload is empty")));
      }
      return List.of(decode(0, payload, 0, payload.length));
    }
    List<Parsed> records = new ArrayList<>();
    int start = 0;
    int line = 1;
    for (int i = 0; i <= payload.length; i++) {
      if (i == payload.length || payload[i] == '\n') {
        int end = i > start && payload[i - 1] == '\r' ? i - 1 : i;
        if (end > start) {
          records.add(decode(line, payload, start, end - start));
        }
        start = i + 1;
        line++;
      }
    }
    if (records.isEmpty()) {
      records.add(new Parsed(0, payload, null,
          new IllegalArgumentException(payload.length == 0 ? "the payload is empty" : "the payload holds only blank lines")));
    }
    return records;
  }

  private Parsed decode(int line, byte[] payload, int offset, int length) {
    byte[] bytes = line == 0 ? payload : Arrays.copyOfRange(payload, offset, offset + length);
    try {
      return new Parsed(line, bytes, codec.decode(payload, offset, length), null);
    } catch (Exception e) {
      // Only exceptions are bad data. Errors (a JVM missing Arrow's --add-opens, out of memory) say
      // the worker is broken: treating them as bad records would drop every message.
      return new Parsed(line, bytes, null, e);
    }
  }

  /**
   * One payload holding {@code rows}: the format's own multi-record encoding, one line per row when
   * newline-delimited, or the single row's record.
   */
  byte[] format(List<Row> rows) throws Exception {
    if (format.holdsManyRecords()) {
      return codec.encode(rows);
    }
    if (!format.isNewlineDelimited()) {
      return codec.encode(rows);
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (Row row : rows) {
      byte[] record = codec.encode(List.of(row));
      for (byte b : record) {
        if (b == '\n' || b == '\r') {
          throw new IllegalArgumentException(
              "A row's " + format.name() + " record contains a line break, so it cannot be written newline-delimited");
        }
      }
      if (record.length == 0) {
        throw new IllegalArgumentException(
            "A row's " + format.name() + " record is empty, and blank lines are skipped when newline-delimited payloads are read");
      }
      out.write(record);
      out.write('\n');
    }
    return out.toByteArray();
  }

  @Override
  public void close() throws Exception {
    codec.close();
  }
}
