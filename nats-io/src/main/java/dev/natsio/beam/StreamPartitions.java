package dev.natsio.beam;

import java.util.ArrayList;
import java.util.List;

/**
 * Partitions of a stream read: each filter subject of {@code NatsIO.read().withFilterSubjects(...)}
 * is read as its own partition.
 *
 * <h3>What a partition is</h3>
 *
 * <p>A partition is a {@link NatsSourceDescriptor} with one filter subject: its own ordered
 * consumer, its own position (the next stream sequence within that filter) and its own watermark.
 * The splittable DoFn gets one element per partition; the Flink source ({@link
 * JetStreamUnboundedSource#split}) one split per partition. Because each consumer has a single
 * filter, several filters also work on servers older than 2.10, which allow one filter per
 * consumer. The partitions' messages together are the messages one consumer over all the filters
 * would deliver, as long as no two filters match the same subject: {@link #requireDisjoint} refuses
 * overlapping filters, since a message in two partitions would be read twice.
 *
 * <h3>Naming partitions</h3>
 *
 * <p>{@link #subjects} expands a pattern with a {@value #TOKEN} token into the subjects {@code 0 ..
 * n-1}, the numbering the server's {@code {{partition(n, ...)}}} subject mapping produces.
 */
final class StreamPartitions {
  static final String TOKEN = "{{partition}}";

  private StreamPartitions() {}

  /** {@code pattern} with its {@value #TOKEN} token replaced by 0 .. numPartitions-1. */
  static List<String> subjects(String pattern, int numPartitions) {
    if (pattern == null || pattern.indexOf(TOKEN) < 0 || pattern.indexOf(TOKEN) != pattern.lastIndexOf(TOKEN)) {
      throw new IllegalArgumentException(
          "NatsIO.read() withPartitions(\"" + pattern + "\", " + numPartitions + "): the subject pattern needs exactly one "
              + TOKEN + " token where the partition number goes, e.g. \"orders." + TOKEN + ".>\".");
    }
    boolean wholeToken = false;
    for (String token : pattern.split("\\.", -1)) {
      wholeToken |= token.equals(TOKEN);
    }
    if (!wholeToken) {
      throw new IllegalArgumentException(
          "NatsIO.read() withPartitions(\"" + pattern + "\", ...): " + TOKEN + " must be a whole subject token (between dots), "
              + "as the server's {{partition(n, ...)}} mapping writes it, e.g. \"orders." + TOKEN + ".>\".");
    }
    if (numPartitions < 1) {
      throw new IllegalArgumentException(
          "NatsIO.read() withPartitions(\"" + pattern + "\", " + numPartitions + "): the number of partitions must be at least 1.");
    }
    List<String> subjects = new ArrayList<>(numPartitions);
    for (int i = 0; i < numPartitions; i++) {
      subjects.add(pattern.replace(TOKEN, Integer.toString(i)));
    }
    return subjects;
  }

  /** One descriptor per filter subject of {@code descriptor} (itself when it has at most one). */
  static List<NatsSourceDescriptor> of(NatsSourceDescriptor descriptor) {
    List<String> filters = descriptor.getFilterSubjects();
    if (filters.size() <= 1) {
      return List.of(descriptor);
    }
    List<NatsSourceDescriptor> partitions = new ArrayList<>(filters.size());
    for (String filter : filters) {
      partitions.add(descriptor.withFilterSubjects(filter));
    }
    return partitions;
  }

  /** Refuses two filter subjects that can match the same subject: its messages would be read twice. */
  static void requireDisjoint(List<String> filters) {
    for (int i = 0; i < filters.size(); i++) {
      for (int j = i + 1; j < filters.size(); j++) {
        if (overlap(filters.get(i).split("\\."), 0, filters.get(j).split("\\."), 0)) {
          throw new IllegalArgumentException(
              "NatsIO.read() withFilterSubjects has overlapping subjects '" + filters.get(i) + "' and '" + filters.get(j)
                  + "': each filter is read as its own partition, so a message matching both would be read twice. "
                  + "Use filters that no subject matches twice (e.g. orders.0.>, orders.1.>).");
        }
      }
    }
  }

  /** True when some subject matches both patterns ({@code *} one token, {@code >} one or more). */
  private static boolean overlap(String[] a, int i, String[] b, int j) {
    if (i == a.length || j == b.length) {
      return i == a.length && j == b.length;
    }
    if (a[i].equals(">") || b[j].equals(">")) {
      return true;
    }
    return (a[i].equals("*") || b[j].equals("*") || a[i].equals(b[j])) && overlap(a, i + 1, b, j + 1);
  }
}
