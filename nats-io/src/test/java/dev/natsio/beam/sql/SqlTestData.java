package dev.natsio.beam.sql;

import dev.natsio.beam.testing.JetStreamTestData;
import io.nats.client.Connection;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;

/**
 * Orders for the SQL tests: JSON objects {@code {"id", "region", "amount"}} with a malformed payload
 * after every fifth, and the totals per region a query over them must give. Shared with the Flink
 * tests in integration/.
 */
public final class SqlTestData {
  /** Regions orders cycle through. */
  public static final String[] REGIONS = {"eu", "us", "ap"};

  /** Payloads that are not orders: each is dropped by a table with {@code "badRecords": "drop"}. */
  private static final String[] MALFORMED = {"{\"id\": 1, \"region\": ", "not json at all", "[1, 2, 3]", ""};

  private SqlTestData() {}

  /** The JSON of order {@code i}: region by {@code i mod 3}, amount {@code i + 0.5}. */
  public static String order(int i) {
    return "{\"id\": " + i + ", \"region\": \"" + REGIONS[i % REGIONS.length] + "\", \"amount\": " + (i + 0.5) + "}";
  }

  /**
   * Publishes orders 0..orders-1 to {@code subject}, with a malformed payload after every fifth
   * order; returns how many malformed payloads were published.
   */
  public static int publishOrdersWithMalformed(Connection connection, String subject, int orders) throws Exception {
    int malformed = (orders + 4) / 5;
    int total = orders + malformed;
    JetStreamTestData.publish(connection, i -> subject, total, i -> payload(i), i -> null);
    return malformed;
  }

  /** Payload {@code i} of {@link #publishOrdersWithMalformed}: every sixth is malformed. */
  private static byte[] payload(int i) {
    String text = i % 6 == 5 ? MALFORMED[(i / 6) % MALFORMED.length] : order(i - i / 6);
    return text.getBytes(StandardCharsets.UTF_8);
  }

  /** Region to "count,sum" of orders 0..orders-1, as a query grouping by region gives them. */
  public static Map<String, String> totals(int orders) {
    Map<String, long[]> counts = new TreeMap<>();
    Map<String, Double> sums = new TreeMap<>();
    for (int i = 0; i < orders; i++) {
      String region = REGIONS[i % REGIONS.length];
      counts.computeIfAbsent(region, r -> new long[1])[0]++;
      sums.merge(region, i + 0.5, Double::sum);
    }
    Map<String, String> totals = new TreeMap<>();
    counts.forEach((region, count) -> totals.put(region, count[0] + "," + sums.get(region)));
    return totals;
  }
}
