package dev.natsio.beam.testing;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/**
 * Finds the {@code nats-server} executable the harness runs.
 *
 * <p>Looks in {@code $NATS_SERVER_BIN}, then every directory on {@code $PATH}, then {@code
 * /usr/sbin/nats-server} (where Debian's package puts it, often outside a user's PATH). When none
 * exists the tests fail with a message saying how to install it: they never skip, because a
 * skipped broker test hides exactly the gap it was written to close.
 */
public final class NatsServerBinary {
  static final String ENV_VARIABLE = "NATS_SERVER_BIN";
  static final String DEBIAN_PATH = "/usr/sbin/nats-server";

  private NatsServerBinary() {}

  /** Returns the path of the nats-server binary, or throws with installation instructions. */
  public static Path locate() {
    return locate(
        System.getenv(ENV_VARIABLE), System.getenv().getOrDefault("PATH", ""), Paths.get(DEBIAN_PATH));
  }

  static Path locate(String fromEnv, String pathVariable, Path debian) {
    if (fromEnv != null && !fromEnv.isBlank()) {
      Path path = Paths.get(fromEnv);
      if (Files.isExecutable(path)) {
        return path;
      }
      throw new IllegalStateException(
          ENV_VARIABLE + " is set to '" + fromEnv + "', which is not an executable file. "
              + "Point it at a nats-server binary or unset it to use the one on PATH.");
    }
    for (String dir : pathVariable.split(File.pathSeparator)) {
      if (dir.isEmpty()) {
        continue;
      }
      Path candidate = Paths.get(dir, "nats-server");
      if (Files.isExecutable(candidate)) {
        return candidate;
      }
    }
    if (Files.isExecutable(debian)) {
      return debian;
    }
    throw new IllegalStateException(
        "nats-server was not found (looked at $" + ENV_VARIABLE + ", PATH and " + debian
            + "). NatsIO's tests run a real NATS server. Install it with "
            + "'sudo apt-get install nats-server' (Debian/Ubuntu) or download it from the NATS "
            + "project, then point " + ENV_VARIABLE + " at the binary.");
  }
}
