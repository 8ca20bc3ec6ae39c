package dev.natsio.beam;

import java.net.URI;
import java.net.URISyntaxException;
import java.util.ArrayList;
import java.util.List;
import org.checkerframework.checker.nullness.qual.Nullable;

/**
 * Parses the comma-separated server list users pass to {@code withServers}, and keeps credentials
 * embedded in it ({@code nats://user:pass@host}) out of everything that is displayed or logged.
 *
 * <p>jnats is handed only the clean URLs; credentials taken from a URL go through its user-info
 * option instead, so they never appear in a jnats log line or exception either.
 */
final class NatsUrls {
  private NatsUrls() {}

  /** The servers, trimmed, each with any {@code user:password@} removed. */
  static List<String> withoutCredentials(String servers) {
    List<String> clean = new ArrayList<>();
    for (String server : split(servers)) {
      clean.add(stripUserInfo(server));
    }
    return clean;
  }

  /** The servers as one display string, credentials removed. */
  static String redact(@Nullable String servers) {
    return servers == null ? "" : String.join(",", withoutCredentials(servers));
  }

  /** The {@code user:password} (or token) embedded in the first server URL that has one, or null. */
  static @Nullable String userInfo(String servers) {
    for (String server : split(servers)) {
      URI uri = parse(server);
      if (uri != null && uri.getRawUserInfo() != null) {
        return uri.getUserInfo();
      }
    }
    return null;
  }

  /**
   * Refuses a URL whose scheme jnats cannot connect with (jnats would say only "unsupported
   * scheme" when the worker connects), naming the schemes that work. A URL without a scheme is
   * {@code nats://}.
   */
  static void checkScheme(String url) {
    int end = url.indexOf("://");
    if (end < 0) {
      return;
    }
    String scheme = url.substring(0, end).toLowerCase(java.util.Locale.ROOT);
    if (!SCHEMES.contains(scheme)) {
      throw new IllegalArgumentException(
          "NatsIO cannot connect to " + url + ": the scheme " + scheme + ":// is not a NATS scheme. Use nats://host:4222 "
              + "(plain or TLS as the server asks), tls://host:4222 (TLS required), or ws:// / wss:// for a server's "
              + "websocket port. A NATS server's client port speaks neither HTTP nor HTTPS.");
    }
  }

  private static final java.util.Set<String> SCHEMES = java.util.Set.of("nats", "tls", "opentls", "ws", "wss");

  static List<String> split(String servers) {
    List<String> parts = new ArrayList<>();
    for (String part : servers.split(",")) {
      String trimmed = part.trim();
      if (!trimmed.isEmpty()) {
        parts.add(trimmed);
      }
    }
    return parts;
  }

  private static String stripUserInfo(String server) {
    int scheme = server.indexOf("://");
    int at = server.lastIndexOf('@');
    if (at < 0 || (scheme >= 0 && at < scheme)) {
      return server;
    }
    return scheme >= 0 ? server.substring(0, scheme + 3) + server.substring(at + 1) : server.substring(at + 1);
  }

  private static @Nullable URI parse(String server) {
    try {
      return new URI(server.contains("://") ? server : "nats://" + server);
    } catch (URISyntaxException e) {
      return null;
    }
  }
}
