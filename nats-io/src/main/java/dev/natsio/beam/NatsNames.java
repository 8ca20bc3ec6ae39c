package dev.natsio.beam;

import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * Checks the names of JetStream streams and consumers when a pipeline is built, so a wrong name
 * fails at once with what to do instead of as a server error (or a timeout) on a worker.
 *
 * <p>The rules are the server's: a stream or consumer name is a single token, so it cannot hold
 * {@code .}, {@code *}, {@code >}, whitespace or a path separator. The usual mistake is a subject
 * where a stream name belongs ({@code withStream("orders.eu")}), so that case says so.
 *
 * <p>{@link #isSubsetOf} is the server's own test for a consumer's filter subject: it must lie
 * within one of the stream's subjects, so the read can say which filter and which subjects before
 * the server answers with a bare error code.
 */
final class NatsNames {
  private NatsNames() {}

  /** {@code name}, or an {@link IllegalArgumentException} saying why it cannot name a stream. */
  static String checkStream(@Nullable String name, String method) {
    return check(name, "stream", method,
        "A stream name is one word such as \"ORDERS\"; subjects go to withFilterSubjects(...)");
  }

  /** {@code name}, or an {@link IllegalArgumentException} saying why it cannot name a consumer. */
  static String checkConsumer(@Nullable String name, String method) {
    return check(name, "consumer", method, "A consumer name is one word such as \"orders-reader\"");
  }

  private static String check(@Nullable String name, String what, String method, String hint) {
    if (name == null || name.isBlank()) {
      throw new IllegalArgumentException(method + " needs a JetStream " + what + " name. " + hint + ".");
    }
    for (int i = 0; i < name.length(); i++) {
      char c = name.charAt(i);
      if (c == '.' || c == '*' || c == '>' || c == '/' || c == '\\' || Character.isWhitespace(c) || Character.isISOControl(c)) {
        String problem = c == '.' || c == '*' || c == '>'
            ? "looks like a subject: JetStream " + what + " names cannot contain '.', '*' or '>'"
            : "contains " + (Character.isWhitespace(c) || Character.isISOControl(c)
                ? "whitespace or a control character" : "'" + c + "'") + ", which JetStream " + what + " names cannot";
        throw new IllegalArgumentException(method + "(\"" + name + "\"): \"" + name + "\" " + problem + ". " + hint + ".");
      }
    }
    return name;
  }

  /**
   * True when every subject {@code filter} matches is matched by {@code pattern} (both may hold
   * wildcards): {@code orders.eu.>} lies within {@code orders.>}, {@code orders.*} does not lie
   * within {@code orders.eu}.
   */
  static boolean isSubsetOf(String filter, String pattern) {
    String[] f = filter.split("\\.", -1);
    String[] p = pattern.split("\\.", -1);
    for (int i = 0; i < p.length; i++) {
      if (i >= f.length) {
        return false;
      }
      if (p[i].equals(">")) {
        return true;
      }
      if (f[i].equals(">")) {
        return false;
      }
      if (!p[i].equals("*") && !p[i].equals(f[i])) {
        return false;
      }
    }
    return f.length == p.length;
  }
}
