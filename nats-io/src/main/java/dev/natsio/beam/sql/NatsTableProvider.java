package dev.natsio.beam.sql;

import com.google.auto.service.AutoService;
import org.apache.beam.sdk.extensions.sql.meta.BeamSqlTable;
import org.apache.beam.sdk.extensions.sql.meta.Table;
import org.apache.beam.sdk.extensions.sql.meta.provider.InMemoryMetaTableProvider;
import org.apache.beam.sdk.extensions.sql.meta.provider.TableProvider;

/**
 * Beam SQL's {@code TYPE nats}: NATS streams and subjects as tables.
 *
 * <pre>{@code
 * CREATE EXTERNAL TABLE orders (id BIGINT, region VARCHAR, amount DOUBLE, nats_timestamp TIMESTAMP)
 * TYPE nats
 * LOCATION 'nats://127.0.0.1:4222'
 * TBLPROPERTIES '{"stream": "ORDERS", "format": "json", "stopAtEndOfStream": true, "badRecords": "drop"}'
 * }</pre>
 *
 * <p>{@code LOCATION} holds the servers (comma-separated, as {@code NatsIO.read().withServers}).
 * {@code TBLPROPERTIES} keys are the builders' names: {@code stream}, {@code filterSubjects} (array),
 * {@code startSequence}, {@code startTime} (ISO-8601), {@code stopSequence}, {@code
 * stopAtEndOfStream}, {@code subject} and {@code queueGroup} (a Core read when there is no stream),
 * {@code consumer} (durable), {@code format} ({@code json}, {@code avro}, {@code arrow}, {@code
 * string}, {@code bytes}), {@code badRecords} ({@code fail} or {@code drop}), and for {@code INSERT
 * INTO}: {@code subject} (where rows are published), {@code jetStream} and {@code messageIdColumn}.
 * Unknown keys and values of the wrong type are refused. Columns named {@code nats_subject}, {@code
 * nats_stream}, {@code nats_sequence}, {@code nats_timestamp} and {@code nats_headers} hold the
 * message's metadata instead of payload fields. Registered for {@code ServiceLoader}, so {@code
 * SqlTransform} and the Beam SQL shell find it when nats-io and Beam SQL are on the class path.
 */
@AutoService(TableProvider.class)
public class NatsTableProvider extends InMemoryMetaTableProvider {
  /** The {@code TYPE} of NATS tables. */
  public static final String TABLE_TYPE = "nats";

  @Override
  public String getTableType() {
    return TABLE_TYPE;
  }

  @Override
  public BeamSqlTable buildBeamSqlTable(Table table) {
    String servers = table.getLocation();
    if (servers == null || servers.isBlank()) {
      throw new IllegalArgumentException(
          "NATS table '" + table.getName() + "' needs LOCATION: the servers, e.g. LOCATION 'nats://127.0.0.1:4222'.");
    }
    return new NatsTable(table.getName(), table.getSchema(), servers,
        NatsTableProperties.parse(table.getName(), table.getProperties()));
  }
}
