package dev.natsio.beam.testing;

import io.nats.client.NKey;
import io.nats.client.support.JwtUtils;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;

/**
 * An operator, one JetStream-enabled account and one user, as {@code nsc} would make them, for a
 * server in operator (decentralized JWT) mode.
 *
 * <p>{@code nsc} is not available here, so the JWTs are issued with jnats's {@link JwtUtils}: the
 * operator self-signs its JWT, signs the accounts' (a system account, which JetStream needs, and
 * the users' account), and the account signs the user's. The server
 * loads the operator JWT and preloads the account ({@code resolver: MEMORY}); the client connects
 * with the user's {@link #credentialsFile() credentials file}.
 */
public final class TestJwtAccounts {
  private static final String OPERATOR_CLAIMS = "{\"type\":\"operator\",\"version\":2}";
  private static final String SYSTEM_ACCOUNT_CLAIMS =
      "{\"limits\":{\"subs\":-1,\"data\":-1,\"payload\":-1,\"imports\":-1,\"exports\":-1,\"wildcards\":true,"
          + "\"conn\":-1,\"leaf\":-1},\"type\":\"account\",\"version\":2}";
  private static final String ACCOUNT_CLAIMS =
      "{\"limits\":{\"subs\":-1,\"data\":-1,\"payload\":-1,\"imports\":-1,\"exports\":-1,\"wildcards\":true,"
          + "\"conn\":-1,\"leaf\":-1,\"mem_storage\":-1,\"disk_storage\":-1,\"streams\":-1,\"consumer\":-1},"
          + "\"default_permissions\":{\"pub\":{},\"sub\":{}},\"type\":\"account\",\"version\":2}";

  private final String operatorJwt;
  private final String systemAccountPublicKey;
  private final String systemAccountJwt;
  private final String accountPublicKey;
  private final String accountJwt;
  private final Path credentialsFile;
  private final String userSeed;

  private TestJwtAccounts(
      String operatorJwt, String systemAccountPublicKey, String systemAccountJwt, String accountPublicKey, String accountJwt,
      Path credentialsFile, String userSeed) {
    this.operatorJwt = operatorJwt;
    this.systemAccountPublicKey = systemAccountPublicKey;
    this.systemAccountJwt = systemAccountJwt;
    this.accountPublicKey = accountPublicKey;
    this.accountJwt = accountJwt;
    this.credentialsFile = credentialsFile;
    this.userSeed = userSeed;
  }

  /** Makes the keys and JWTs, writing the user's credentials file into {@code dir}. */
  public static TestJwtAccounts create(Path dir) {
    try {
      SecureRandom random = new SecureRandom();
      NKey operator = NKey.createOperator(random);
      NKey system = NKey.createAccount(random);
      NKey account = NKey.createAccount(random);
      NKey user = NKey.createUser(random);
      String operatorPublic = new String(operator.getPublicKey());
      String systemPublic = new String(system.getPublicKey());
      String accountPublic = new String(account.getPublicKey());
      long now = JwtUtils.currentTimeSeconds();
      String operatorJwt = JwtUtils.issueJWT(operator, operatorPublic, "natsio-test-operator", null, now, operatorPublic, () -> OPERATOR_CLAIMS);
      // JetStream needs a system account in operator mode (the server refuses to start JetStream without one).
      String systemJwt = JwtUtils.issueJWT(operator, systemPublic, "SYS", null, now, operatorPublic, () -> SYSTEM_ACCOUNT_CLAIMS);
      String accountJwt = JwtUtils.issueJWT(operator, accountPublic, "natsio-test-account", null, now, operatorPublic, () -> ACCOUNT_CLAIMS);
      String userJwt = JwtUtils.issueUserJWT(account, accountPublic, new String(user.getPublicKey()), "natsio-test-user");
      String seed = new String(user.getSeed());
      Path creds = dir.resolve("user.creds");
      Files.writeString(creds, String.format(JwtUtils.NATS_USER_JWT_FORMAT, userJwt, seed), StandardCharsets.US_ASCII);
      return new TestJwtAccounts(operatorJwt, systemPublic, systemJwt, accountPublic, accountJwt, creds, seed);
    } catch (GeneralSecurityException | IOException e) {
      throw new IllegalStateException("Could not issue test JWTs", e);
    }
  }

  /** The server configuration lines for operator mode with the account preloaded. */
  String serverConfig() {
    return "operator: \"" + operatorJwt + "\"\n"
        + "system_account: " + systemAccountPublicKey + "\n"
        + "resolver: MEMORY\n"
        + "resolver_preload: {\n  " + systemAccountPublicKey + ": \"" + systemAccountJwt + "\"\n  "
        + accountPublicKey + ": \"" + accountJwt + "\"\n}\n";
  }

  public Path credentialsFile() {
    return credentialsFile;
  }

  /** The user's nkey seed, which the credentials file holds (tests check it never leaks). */
  public String userSeed() {
    return userSeed;
  }
}
