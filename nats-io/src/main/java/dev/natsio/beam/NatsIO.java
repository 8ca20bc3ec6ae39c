package dev.natsio.beam;

import static java.util.Objects.requireNonNull;

import com.google.auto.value.AutoValue;
import io.nats.client.AuthHandler;
import io.nats.client.JetStreamOptions;
import io.nats.client.NKey;
import io.nats.client.Nats;
import io.nats.client.Options;
import io.nats.client.api.AckPolicy;
import io.nats.client.api.ConsumerConfiguration;
import java.io.IOException;
import java.io.Serializable;
import java.security.GeneralSecurityException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.coders.VarLongCoder;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.FlatMapElements;
import javax.net.ssl.SSLContext;
import org.apache.beam.sdk.transforms.Impulse;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.Reshuffle;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.transforms.View;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.transforms.errorhandling.BadRecord;
import org.apache.beam.sdk.transforms.errorhandling.BadRecordRouter;
import org.apache.beam.sdk.transforms.errorhandling.ErrorHandler;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.PCollectionView;
import org.apache.beam.sdk.values.PInput;
import org.apache.beam.sdk.values.POutput;
import org.apache.beam.sdk.values.PValue;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Duration;
import org.joda.time.Instant;

/**
 * Apache Beam I/O for NATS: read JetStream streams in a pipeline, and write messages to NATS.
 *
 * <h2>Reading a JetStream stream</h2>
 *
 * <pre>{@code
 * PCollection<NatsMessage> orders = pipeline.apply(
 *     NatsIO.read()
 *         .withServers("nats://localhost:4222")      // comma-separated list
 *         .withStream("orders")
 *         .withFilterSubjects("orders.eu.>")         // optional
 *         .withStartSequence(1_000)                  // or withStartTime(instant); default: first message
 *         .withStopAtEndOfStream());                 // or withStopSequence / withStopTime: bounded
 * }</pre>
 *
 * <p>The read is a splittable DoFn whose restriction is a range of stream sequence numbers, except
 * for an unbounded read on Beam's classic Flink runner (or with {@code
 * --experiments=use_deprecated_read}), which is a Beam {@code UnboundedSource} that Flink runs as a
 * native source; both forms read the same way (see {@code docs/runners.md}). The runner's
 * checkpoint holds the position, not the server: nothing is acknowledged or deleted, and a restore
 * replays from exactly where the checkpoint was taken, on every runner. Without a stop the read is
 * unbounded and follows the stream live; with one it is bounded and split for parallel reading. A
 * refusal met while reading (the stream deleted, a missing permission) fails the read with a
 * message naming it; a server that is away is waited for. Element timestamps are the server's
 * publish time by default; see {@link Read#withProcessingTime()} and {@link Read#withTimestampFn}.
 * The watermark follows them and, once the read has caught up, advances to now minus {@link
 * Read#withIdleWatermarkDelay} so event-time windows close on a quiet stream.
 *
 * <p>One filter subject (or none) is read by one reader, whatever the job's parallelism. To read
 * one stream on several workers, partition it by subject and give each partition's filter:
 * {@link Read#withFilterSubjects} with several subjects, or {@link Read#withPartitions}, reads
 * each as its own partition with its own position and watermark.
 *
 * <p>To read many streams or subject partitions found at run time, apply {@link
 * #readSourceDescriptors()} to a {@code PCollection<NatsSourceDescriptor>}.
 *
 * <h2>Writing</h2>
 *
 * <pre>{@code
 * WriteResult written = messages.apply(
 *     NatsIO.write()
 *         .withServers("nats://localhost:4222")
 *         .withJetStream()                                        // default: Core NATS
 *         .withMessageIdFn(m -> m.getStream() + ":" + m.getSequence())
 *         .withBadRecordErrorHandler(errorHandler));              // optional
 * PCollection<NatsPublishResult> stored = written.getPublishResults();
 * }</pre>
 *
 * <p>Each message goes to its own subject unless {@link Write#withSubject} (one subject for all)
 * or {@link Write#withSubjectFn} says otherwise; its headers are published with it. With {@link
 * Write#withJetStream()} every message is published asynchronously, at most {@link
 * Write#withMaxInFlight} (default 4,096) awaiting acknowledgement per DoFn instance, and every
 * acknowledgement is awaited before a bundle completes; timed-out publishes are retried with the
 * same message id. With {@link Write#withMessageIdFn} the stream stores each message once even
 * when the runner retries a bundle, as long as the retry comes within the stream's duplicate window
 * (2 minutes by default). A Core write only flushes each bundle to the server: Core NATS confirms
 * no delivery, and its publish results are empty. Messages NATS refuses fail the pipeline with a
 * {@link NatsIOException}, or go to {@link Write#withBadRecordErrorHandler}.
 *
 * <h2>Reading through a durable consumer (at-least-once)</h2>
 *
 * <pre>{@code
 * PCollection<NatsMessage> jobs = pipeline.apply(
 *     NatsIO.read()
 *         .withServers("nats://localhost:4222")
 *         .withStream("jobs")
 *         .withConsumer("workers"));                 // or withConsumerConfiguration(...) to create it
 * }</pre>
 *
 * <p>The position-tracked read never acknowledges, so it cannot drain work-queue streams (it
 * refuses them) or release interest-stream messages. {@link Read#withConsumer} reads through a
 * durable pull consumer instead and acknowledges each message once the runner has committed the
 * bundle that output it (bundle finalization): at-least-once, with redeliveries marked by {@link
 * NatsMessage#getDeliveredCount()}. It needs a runner that finalizes bundles (Flink: streaming with
 * checkpointing); see <a href="doc-files/delivery-modes.md">docs/delivery-modes.md</a>.
 *
 * <h2>Reading a Core NATS subject</h2>
 *
 * <pre>{@code
 * PCollection<NatsMessage> ticks = pipeline.apply(
 *     NatsIO.read()
 *         .withServers("nats://localhost:4222")
 *         .withSubject("sensors.>")                  // wildcards allowed
 *         .withQueueGroup("ingest")                  // optional: share the messages with other members
 *         .withNumReaders(4));                       // optional: this read's own members of the group
 * }</pre>
 *
 * <p>A plain subscription, kept open across bundles on each worker: <b>at-most-once</b>. Messages
 * published while no subscription is open, received beyond the buffer between bundles ({@link
 * Read#withMaxBufferedMessages}, counted in the {@code NatsIO/coreMessagesDropped} metric and
 * logged), or buffered on a worker that fails, are lost. Timestamps and the watermark are
 * processing time; the messages' stream is null and sequence 0. For every message, use a JetStream
 * stream that captures the subject.
 *
 * <h2>Bounding any read</h2>
 *
 * <p>{@link Read#withMaxNumRecords} and {@link Read#withMaxReadTime} make a read bounded, JetStream
 * or Core: it ends after that many messages or that much wall time, or at its stop if that comes
 * first. The limit applies to the whole read (which is then read as one range, not split) and
 * survives the runner's checkpoints; with {@link #readSourceDescriptors()} it applies to each
 * descriptor. Useful for tests, samples and batch jobs over live subjects.
 *
 * <p>{@link Read#withMaxMessagesPerSecond} caps how fast each reader reads: the whole read for a
 * live stream, durable-consumer or single Core read, each piece of a split bounded read, each of
 * {@link Read#withNumReaders} Core readers.
 *
 * <h2>Rows from payloads, payloads from rows</h2>
 *
 * <pre>{@code
 * NatsFormat json = NatsFormat.json(schema);        // or avro, arrow, string, bytes; withNewlineDelimited()
 * PCollection<Row> rows = pipeline
 *     .apply(NatsIO.read().withServers(url).withStream("orders"))
 *     .apply(NatsIO.parsePayloads(json).withMetadata().withBadRecordErrorHandler(errorHandler));
 * rows.apply(NatsIO.formatRows(json, "orders.copy")).apply(NatsIO.write().withServers(url).withJetStream());
 * }</pre>
 *
 * <p>{@link #parsePayloads} is a transform of its own rather than an option of the read, so it
 * works after {@link #read()}, {@link #readSourceDescriptors()} or any other source of messages,
 * and the read's output stays {@code PCollection<NatsMessage>}. See {@link NatsFormat} and {@link
 * ParsePayloads}, including how to read with event times from a payload field.
 *
 * <h2>Connections</h2>
 *
 * <p>{@code withServers(...)} is the short form of {@link ConnectionConfiguration}, which also
 * holds authentication (user and password, token, nkey seed, credentials file), TLS (trust store
 * or CA PEM, client key store or PEM certificate and key; the server's certificate and host name are
 * always verified) and a JetStream domain or API prefix:
 *
 * <pre>{@code
 * NatsIO.read()
 *     .withConnectionConfiguration(
 *         NatsIO.ConnectionConfiguration.create("tls://nats.example.com:4222")
 *             .withCredentialsFile("/etc/nats/reader.creds")
 *             .withCaCertificate("/etc/nats/ca.pem"))
 *     .withStream("orders");
 * }</pre>
 *
 * <p>Each worker JVM shares one connection per configuration across all bundles and DoFn
 * instances. Credentials in a server URL ({@code nats://user:pass@host}) are accepted. No password,
 * token, seed or store password appears in display data, {@code toString()}, logs or error
 * messages. A wrong credential, an untrusted certificate or an unreachable server fails the
 * pipeline with a {@link NatsIOException} naming the servers and the cause, within the connect
 * timeout.
 */
public final class NatsIO {
  private NatsIO() {}

  /** Defaults a benchmark or a user would tune. */
  static final long DEFAULT_SPLIT_SIZE = 100_000;
  static final int DEFAULT_BATCH_SIZE = 1_000;
  static final Duration DEFAULT_IDLE_WATERMARK_DELAY = Duration.standardSeconds(2);
  static final int DEFAULT_MAX_BUFFERED_MESSAGES = 10_000;

  /**
   * A read: configure it with {@code withServers} and either {@code withStream} (JetStream) or
   * {@code withSubject} (Core NATS).
   */
  public static Read read() {
    return new AutoValue_NatsIO_Read.Builder()
        .setFilterSubjects(List.of())
        .setMaxBufferedMessages(DEFAULT_MAX_BUFFERED_MESSAGES)
        .setNumReaders(1)
        .setStopAtEndOfStream(false)
        .setTimestampPolicy(TimestampPolicy.PUBLISH_TIME)
        .setMaxDelay(Duration.ZERO)
        .setIdleWatermarkDelay(DEFAULT_IDLE_WATERMARK_DELAY)
        .setSplitSize(DEFAULT_SPLIT_SIZE)
        .setBatchSize(DEFAULT_BATCH_SIZE)
        .build();
  }

  /** Reads the streams named by a {@code PCollection<NatsSourceDescriptor>}. */
  public static ReadSourceDescriptors readSourceDescriptors() {
    return new AutoValue_NatsIO_ReadSourceDescriptors.Builder()
        .setTimestampPolicy(TimestampPolicy.PUBLISH_TIME)
        .setMaxDelay(Duration.ZERO)
        .setIdleWatermarkDelay(DEFAULT_IDLE_WATERMARK_DELAY)
        .setSplitSize(DEFAULT_SPLIT_SIZE)
        .setBatchSize(DEFAULT_BATCH_SIZE)
        .setBounded(false)
        .build();
  }

  /**
   * Parses each message's payload into rows of {@code format}'s schema: {@code
   * PCollection<NatsMessage>} to {@code PCollection<Row>}. See {@link ParsePayloads}.
   */
  public static ParsePayloads parsePayloads(NatsFormat format) {
    return ParsePayloads.of(format);
  }

  /**
   * Serializes rows of {@code format}'s schema into messages for {@code subject}, ready for {@link
   * #write()}: {@code PCollection<Row>} to {@code PCollection<NatsMessage>}. See {@link FormatRows}.
   */
  public static FormatRows formatRows(NatsFormat format, String subject) {
    return FormatRows.of(format, subject);
  }

  /** Where element timestamps come from. */
  enum TimestampPolicy {
    PUBLISH_TIME,
    PROCESSING_TIME,
    TIMESTAMP_FN
  }

  // ---- ConnectionConfiguration -----------------------------------------------------------------

  /**
   * How to reach NATS: servers, authentication, TLS and JetStream domain, shared by reads and writes.
   *
   * <p>Authentication is one of: user and password ({@link #withUsernamePassword}, or {@code
   * nats://user:pass@host} in the URL), a token ({@link #withToken}), an nkey seed ({@link
   * #withNKeySeed}), or a credentials file holding a user JWT and its seed ({@link
   * #withCredentialsFile}).
   *
   * <p>TLS is used when a URL says {@code tls://} or any TLS option is set. The server's certificate
   * is always verified: against a trust store ({@link #withTrustStore}), a PEM file of CA
   * certificates ({@link #withCaCertificate}), or by default the JVM's trust store; and its host
   * name is checked against the URL (which jnats alone does not do) unless {@link
   * #withoutTlsHostnameVerification()}. A client certificate for servers that verify clients comes
   * from a key store ({@link #withKeyStore}) or PEM files ({@link #withClientCertificate}). There is
   * deliberately no way to skip certificate verification; {@code opentls://} URLs are refused.
   *
   * <p>Files (credentials, stores, PEM) are read by each worker when it connects, so they must exist
   * at the same path on every worker.
   *
   * <p>Serializable, and safe to display: {@link #toString()}, display data and NatsIO's log lines
   * and error messages never show a password, token, seed or store password.
   */
  @AutoValue
  public abstract static class ConnectionConfiguration implements Serializable {
    private static final long serialVersionUID = 1L;

    /** Comma-separated server URLs, e.g. {@code nats://a:4222,nats://b:4222}. */
    public abstract String getServers();

    /** The user name for user/password authentication, or null. The password is never exposed. */
    public abstract @Nullable String getUsername();

    abstract @Nullable String getPassword();

    abstract @Nullable String getToken();

    abstract @Nullable String getNKeySeed();

    /** Path of a NATS credentials file (user JWT and nkey seed), read on each worker. */
    public abstract @Nullable String getCredentialsFile();

    /** Path of the trust store holding the CAs the server's certificate must chain to, or null. */
    public abstract @Nullable String getTrustStorePath();

    abstract @Nullable String getTrustStorePassword();

    /** The trust store's type ({@code JKS}, {@code PKCS12}); null means the JVM default. */
    public abstract @Nullable String getTrustStoreType();

    /** Path of the key store holding the client certificate for mutual TLS, or null. */
    public abstract @Nullable String getKeyStorePath();

    abstract @Nullable String getKeyStorePassword();

    /** The key store's type ({@code JKS}, {@code PKCS12}); null means the JVM default. */
    public abstract @Nullable String getKeyStoreType();

    /** Path of a PEM file of CA certificates the server's certificate must chain to. */
    public abstract @Nullable String getCaCertificateFile();

    /** Path of the PEM client certificate (chain) presented to servers that verify clients. */
    public abstract @Nullable String getClientCertificateFile();

    /** Path of the PEM private key of the client certificate. */
    public abstract @Nullable String getClientKeyFile();

    /** Whether TLS also checks that the server's certificate names the host connected to (default true). */
    public abstract boolean getTlsHostnameVerification();

    /** The JetStream domain to address (a leaf node's or hub's), or null for the local one. */
    public abstract @Nullable String getJetStreamDomain();

    /** The JetStream API prefix (for an account import), or null for {@code $JS.API}. */
    public abstract @Nullable String getJetStreamApiPrefix();

    /** The name the server shows for this client's connections, or null. */
    public abstract @Nullable String getConnectionName();

    /** How long the first connect may take (default 5 s). */
    public abstract Duration getConnectTimeout();

    /** The pause between reconnect attempts (default 250 ms). */
    public abstract Duration getReconnectWait();

    /** Reconnect attempts after a connection is lost; -1 (the default) retries forever. */
    public abstract int getMaxReconnects();

    abstract Builder toBuilder();

    /** Connects to {@code servers} (comma-separated URLs), reconnecting forever on loss. */
    public static ConnectionConfiguration create(String servers) {
      return new AutoValue_NatsIO_ConnectionConfiguration.Builder()
          .setServers(checkServers(servers))
          .setTlsHostnameVerification(true)
          .setConnectTimeout(Duration.standardSeconds(5))
          .setReconnectWait(Duration.millis(250))
          .setMaxReconnects(-1)
          .build();
    }

    private static String checkServers(String servers) {
      requireNonNull(servers, "servers");
      List<String> urls = NatsUrls.withoutCredentials(servers);
      if (urls.isEmpty()) {
        throw new IllegalArgumentException(
            "NatsIO needs at least one server URL, e.g. \"nats://localhost:4222\"; got \"" + NatsUrls.redact(servers) + "\"");
      }
      for (String url : urls) {
        NatsUrls.checkScheme(url);
        if (url.toLowerCase(java.util.Locale.ROOT).startsWith("opentls://")) {
          throw new IllegalArgumentException(
              "NatsIO refuses " + url + ": opentls:// accepts any server certificate. Use tls:// and give the server's CA "
                  + "with withCaCertificate(...) or withTrustStore(...).");
        }
      }
      return servers;
    }

    /** This configuration with other servers: comma-separated URLs such as {@code nats://host:4222}. */
    public ConnectionConfiguration withServers(String servers) {
      return toBuilder().setServers(checkServers(servers)).build();
    }

    /** Authenticates with a user name and password (kept out of display data and logs). */
    public ConnectionConfiguration withUsernamePassword(String username, String password) {
      return toBuilder().setUsername(requireNonNull(username, "username")).setPassword(requireNonNull(password, "password")).build();
    }

    /** Authenticates with a token (kept out of display data and logs). */
    public ConnectionConfiguration withToken(String token) {
      return toBuilder().setToken(requireNonNull(token, "token")).build();
    }

    /**
     * Authenticates with an nkey: the user seed (it starts with {@code SU}) signs the server's
     * challenge; only its public key is sent.
     */
    public ConnectionConfiguration withNKeySeed(String seed) {
      requireNonNull(seed, "seed");
      NKey key;
      try {
        key = NKey.fromSeed(seed.toCharArray());
      } catch (RuntimeException e) {
        // The seed is not quoted: a malformed secret is still a secret.
        throw new IllegalArgumentException("withNKeySeed(...) was not given a valid NATS nkey seed (a user seed starts with \"SU\").");
      }
      if (key.getType() != NKey.Type.USER) {
        throw new IllegalArgumentException(
            "withNKeySeed(...) was given a " + key.getType() + " seed; a client authenticates with a USER seed (it starts with \"SU\").");
      }
      return toBuilder().setNKeySeed(seed).build();
    }

    /**
     * Authenticates with a NATS credentials file ({@code .creds}: a user JWT and its nkey seed), as
     * {@code nsc} writes for servers in operator (decentralized JWT) mode. The file is read at each
     * connect, on the worker.
     */
    public ConnectionConfiguration withCredentialsFile(String path) {
      return toBuilder().setCredentialsFile(requireNonNull(path, "path")).build();
    }

    /** Trusts the CA certificates in this key store (type: the JVM default, PKCS12 on Java 17). */
    public ConnectionConfiguration withTrustStore(String path, String password) {
      return withTrustStore(path, password, null);
    }

    /** Trusts the CA certificates in this key store of the given type ({@code "PKCS12"}, {@code "JKS"}). */
    public ConnectionConfiguration withTrustStore(String path, @Nullable String password, @Nullable String type) {
      return toBuilder().setTrustStorePath(requireNonNull(path, "path")).setTrustStorePassword(password).setTrustStoreType(type).build();
    }

    /** Presents the key and certificate in this key store to servers that verify clients. */
    public ConnectionConfiguration withKeyStore(String path, String password) {
      return withKeyStore(path, password, null);
    }

    /** As {@link #withKeyStore(String, String)}, for a store of the given type. */
    public ConnectionConfiguration withKeyStore(String path, String password, @Nullable String type) {
      return toBuilder().setKeyStorePath(requireNonNull(path, "path")).setKeyStorePassword(requireNonNull(password, "password")).setKeyStoreType(type).build();
    }

    /** Trusts the CA certificates in this PEM file. */
    public ConnectionConfiguration withCaCertificate(String pemPath) {
      return toBuilder().setCaCertificateFile(requireNonNull(pemPath, "pemPath")).build();
    }

    /**
     * Presents this PEM certificate (chain) and unencrypted PEM private key (PKCS#8, or PKCS#1 RSA) to
     * servers that verify clients.
     */
    public ConnectionConfiguration withClientCertificate(String certificatePemPath, String keyPemPath) {
      return toBuilder()
          .setClientCertificateFile(requireNonNull(certificatePemPath, "certificatePemPath"))
          .setClientKeyFile(requireNonNull(keyPemPath, "keyPemPath"))
          .build();
    }

    /**
     * Keeps checking the server's certificate chain but no longer that it names the host in the URL.
     * For clusters whose servers advertise addresses (often IPs) their certificates do not list.
     */
    public ConnectionConfiguration withoutTlsHostnameVerification() {
      return toBuilder().setTlsHostnameVerification(false).build();
    }

    /** Uses JetStream in this domain (e.g. a leaf node's hub): API subjects {@code $JS.<domain>.API.>}. */
    public ConnectionConfiguration withJetStreamDomain(String domain) {
      return toBuilder().setJetStreamDomain(requireNonNull(domain, "domain")).build();
    }

    /** Uses JetStream through this API prefix instead of {@code $JS.API} (an account import, for example). */
    public ConnectionConfiguration withJetStreamApiPrefix(String prefix) {
      return toBuilder().setJetStreamApiPrefix(requireNonNull(prefix, "prefix")).build();
    }

    /** The name the server shows for this client's connections. */
    public ConnectionConfiguration withConnectionName(String connectionName) {
      return toBuilder().setConnectionName(connectionName).build();
    }

    /** How long the first connect may take before the pipeline fails with a clear error. */
    public ConnectionConfiguration withConnectTimeout(Duration connectTimeout) {
      return toBuilder().setConnectTimeout(connectTimeout).build();
    }

    /** The pause between reconnect attempts after a connection is lost (default 250 ms). */
    public ConnectionConfiguration withReconnectWait(Duration reconnectWait) {
      return toBuilder().setReconnectWait(reconnectWait).build();
    }

    /** Reconnect attempts after a connection is lost; -1 (the default) retries forever. */
    public ConnectionConfiguration withMaxReconnects(int maxReconnects) {
      return toBuilder().setMaxReconnects(maxReconnects).build();
    }

    /** Throws when options that exclude each other are combined; called when a transform expands. */
    void validate() {
      String urlUserInfo = NatsUrls.userInfo(getServers());
      int auths = (getUsername() != null ? 1 : 0) + (getToken() != null ? 1 : 0) + (getNKeySeed() != null ? 1 : 0)
          + (getCredentialsFile() != null ? 1 : 0) + (urlUserInfo != null && getUsername() == null && getToken() == null ? 1 : 0);
      if (auths > 1) {
        throw new IllegalArgumentException(
            "NatsIO connection to " + displayServers() + " has more than one kind of authentication ("
                + String.join(", ", authKinds()) + "): keep one of them.");
      }
      if (getTrustStorePath() != null && getCaCertificateFile() != null) {
        throw new IllegalArgumentException("NatsIO connection has both withTrustStore and withCaCertificate: keep one of them.");
      }
      if (getKeyStorePath() != null && getClientCertificateFile() != null) {
        throw new IllegalArgumentException("NatsIO connection has both withKeyStore and withClientCertificate: keep one of them.");
      }
      if (getJetStreamDomain() != null && getJetStreamApiPrefix() != null) {
        throw new IllegalArgumentException(
            "NatsIO connection has both withJetStreamDomain and withJetStreamApiPrefix: a domain is a prefix ($JS.<domain>.API); keep one.");
      }
    }

    private List<String> authKinds() {
      List<String> kinds = new ArrayList<>();
      if (getUsername() != null) {
        kinds.add("user/password");
      }
      if (getToken() != null) {
        kinds.add("token");
      }
      if (getNKeySeed() != null) {
        kinds.add("nkey");
      }
      if (getCredentialsFile() != null) {
        kinds.add("credentials file");
      }
      if (NatsUrls.userInfo(getServers()) != null) {
        kinds.add("credentials in the URL");
      }
      return kinds;
    }

    /** True when any trust or identity option is set; TLS is then used (a {@code tls://} URL also turns it on). */
    boolean hasTlsMaterial() {
      return getTrustStorePath() != null || getKeyStorePath() != null || getCaCertificateFile() != null || getClientCertificateFile() != null;
    }

    private boolean hasSecrets() {
      return getPassword() != null || getToken() != null || getNKeySeed() != null
          || getTrustStorePassword() != null || getKeyStorePassword() != null || NatsUrls.userInfo(getServers()) != null;
    }

    /** The servers with any embedded credentials removed. */
    String displayServers() {
      return NatsUrls.redact(getServers());
    }

    /** JetStream options for the configured domain or API prefix; every JetStream call uses them. */
    JetStreamOptions jetStreamOptions() {
      JetStreamOptions.Builder options = new JetStreamOptions.Builder();
      if (getJetStreamDomain() != null) {
        options.domain(getJetStreamDomain());
      }
      if (getJetStreamApiPrefix() != null) {
        options.prefix(getJetStreamApiPrefix());
      }
      return options.build();
    }

    /**
     * jnats options for this configuration; the URLs handed over carry no credentials. Builds the TLS
     * context, so it reads the configured files.
     */
    Options toOptions() throws GeneralSecurityException, IOException {
      return toOptionsBuilder().build();
    }

    /** As {@link #toOptions()}, for callers that add listeners. */
    Options.Builder toOptionsBuilder() throws GeneralSecurityException, IOException {
      List<String> urls = NatsUrls.withoutCredentials(getServers());
      Options.Builder options =
          new Options.Builder()
              .servers(urls.toArray(new String[0]))
              .connectionTimeout(java.time.Duration.ofMillis(getConnectTimeout().getMillis()))
              .reconnectWait(java.time.Duration.ofMillis(getReconnectWait().getMillis()))
              .maxReconnects(getMaxReconnects());
      String urlUserInfo = NatsUrls.userInfo(getServers());
      if (getUsername() != null) {
        options.userInfo(getUsername().toCharArray(), getPassword() == null ? new char[0] : getPassword().toCharArray());
      } else if (getToken() != null) {
        options.token(getToken().toCharArray());
      } else if (urlUserInfo != null && urlUserInfo.contains(":")) {
        int colon = urlUserInfo.indexOf(':');
        options.userInfo(urlUserInfo.substring(0, colon).toCharArray(), urlUserInfo.substring(colon + 1).toCharArray());
      } else if (urlUserInfo != null) {
        options.token(urlUserInfo.toCharArray());
      }
      if (getNKeySeed() != null) {
        options.authHandler(new NKeyAuthHandler(getNKeySeed()));
      } else if (getCredentialsFile() != null) {
        options.authHandler(Nats.credentials(getCredentialsFile()));
      }
      boolean tlsUrl = false;
      for (String url : urls) {
        String lower = url.toLowerCase(java.util.Locale.ROOT);
        tlsUrl |= lower.startsWith("tls://") || lower.startsWith("wss://");
      }
      SSLContext ssl = NatsTls.sslContext(this, tlsUrl);
      if (ssl != null) {
        options.sslContext(ssl);
      }
      if (getConnectionName() != null) {
        options.connectionName(getConnectionName());
      }
      return options;
    }

    void populateDisplayData(DisplayData.Builder builder) {
      builder.add(DisplayData.item("servers", displayServers()).withLabel("NATS servers"));
      builder.addIfNotNull(DisplayData.item("username", getUsername()).withLabel("NATS user"));
      builder.addIfNotNull(DisplayData.item("credentialsFile", getCredentialsFile()).withLabel("NATS credentials file"));
      if (getNKeySeed() != null) {
        builder.add(DisplayData.item("nkey", "(seed set, hidden)"));
      }
      builder.addIfNotNull(DisplayData.item("trustStore", getTrustStorePath()));
      builder.addIfNotNull(DisplayData.item("keyStore", getKeyStorePath()));
      builder.addIfNotNull(DisplayData.item("caCertificate", getCaCertificateFile()));
      builder.addIfNotNull(DisplayData.item("clientCertificate", getClientCertificateFile()));
      if (!getTlsHostnameVerification()) {
        builder.add(DisplayData.item("tlsHostnameVerification", false));
      }
      builder.addIfNotNull(DisplayData.item("jetStreamDomain", getJetStreamDomain()));
      builder.addIfNotNull(DisplayData.item("jetStreamApiPrefix", getJetStreamApiPrefix()));
      builder.addIfNotNull(DisplayData.item("connectionName", getConnectionName()));
      if (hasSecrets()) {
        builder.add(DisplayData.item("credentials", "(set, hidden)"));
      }
    }

    @Override
    public final String toString() {
      StringBuilder text = new StringBuilder("ConnectionConfiguration{servers=").append(displayServers());
      appendIfSet(text, "username", getUsername());
      appendIfSet(text, "credentialsFile", getCredentialsFile());
      appendIfSet(text, "trustStore", getTrustStorePath());
      appendIfSet(text, "keyStore", getKeyStorePath());
      appendIfSet(text, "caCertificate", getCaCertificateFile());
      appendIfSet(text, "clientCertificate", getClientCertificateFile());
      if (!getTlsHostnameVerification()) {
        text.append(", tlsHostnameVerification=false");
      }
      appendIfSet(text, "jetStreamDomain", getJetStreamDomain());
      appendIfSet(text, "jetStreamApiPrefix", getJetStreamApiPrefix());
      appendIfSet(text, "connectionName", getConnectionName());
      if (hasSecrets()) {
        text.append(", credentials=(hidden)");
      }
      return text.append('}').toString();
    }

    private static void appendIfSet(StringBuilder text, String name, @Nullable String value) {
      if (value != null) {
        text.append(", ").append(name).append('=').append(value);
      }
    }

    @AutoValue.Builder
    abstract static class Builder {
      abstract Builder setServers(String servers);

      abstract Builder setUsername(@Nullable String username);

      abstract Builder setPassword(@Nullable String password);

      abstract Builder setToken(@Nullable String token);

      abstract Builder setNKeySeed(@Nullable String seed);

      abstract Builder setCredentialsFile(@Nullable String path);

      abstract Builder setTrustStorePath(@Nullable String path);

      abstract Builder setTrustStorePassword(@Nullable String password);

      abstract Builder setTrustStoreType(@Nullable String type);

      abstract Builder setKeyStorePath(@Nullable String path);

      abstract Builder setKeyStorePassword(@Nullable String password);

      abstract Builder setKeyStoreType(@Nullable String type);

      abstract Builder setCaCertificateFile(@Nullable String path);

      abstract Builder setClientCertificateFile(@Nullable String path);

      abstract Builder setClientKeyFile(@Nullable String path);

      abstract Builder setTlsHostnameVerification(boolean verify);

      abstract Builder setJetStreamDomain(@Nullable String domain);

      abstract Builder setJetStreamApiPrefix(@Nullable String prefix);

      abstract Builder setConnectionName(@Nullable String connectionName);

      abstract Builder setConnectTimeout(Duration connectTimeout);

      abstract Builder setReconnectWait(Duration reconnectWait);

      abstract Builder setMaxReconnects(int maxReconnects);

      abstract ConnectionConfiguration build();
    }
  }

  /**
   * Answers the server's nkey challenge from a seed. The key is rebuilt from the seed for each
   * connect (jnats clears key material after use), and nothing of it is logged.
   */
  private static final class NKeyAuthHandler implements AuthHandler {
    private final String seed;

    NKeyAuthHandler(String seed) {
      this.seed = seed;
    }

    @Override
    public byte[] sign(byte[] nonce) {
      NKey key = NKey.fromSeed(seed.toCharArray());
      try {
        return key.sign(nonce);
      } catch (GeneralSecurityException | IOException e) {
        throw new IllegalStateException("Could not sign the NATS server's nkey challenge", e);
      } finally {
        key.clear();
      }
    }

    @Override
    public char[] getID() {
      NKey key = NKey.fromSeed(seed.toCharArray());
      try {
        return key.getPublicKey();
      } catch (GeneralSecurityException | IOException e) {
        throw new IllegalStateException("Could not derive the public nkey from the seed", e);
      } finally {
        key.clear();
      }
    }

    @Override
    public char @Nullable [] getJWT() {
      return null;
    }
  }

  // ---- Read ------------------------------------------------------------------------------------

  /**
   * A {@link PTransform} that reads NATS: a JetStream stream by position ({@link #withStream}), a
   * JetStream stream through a durable consumer ({@link #withConsumer}), or a Core NATS subject
   * ({@link #withSubject}). See {@link NatsIO}.
   */
  @AutoValue
  public abstract static class Read extends PTransform<PBegin, PCollection<NatsMessage>> {
    abstract @Nullable ConnectionConfiguration getConnectionConfiguration();

    abstract @Nullable String getStream();

    abstract List<String> getFilterSubjects();

    abstract @Nullable Long getStartSequence();

    abstract @Nullable Instant getStartTime();

    abstract @Nullable Long getStopSequence();

    abstract @Nullable Instant getStopTime();

    abstract boolean getStopAtEndOfStream();

    abstract TimestampPolicy getTimestampPolicy();

    abstract @Nullable SerializableFunction<NatsMessage, Instant> getTimestampFn();

    abstract Duration getMaxDelay();

    abstract Duration getIdleWatermarkDelay();

    abstract long getSplitSize();

    abstract int getBatchSize();

    abstract @Nullable String getSubject();

    abstract @Nullable String getQueueGroup();

    abstract int getNumReaders();

    abstract int getMaxBufferedMessages();

    abstract @Nullable Long getMaxNumRecords();

    abstract @Nullable Duration getMaxReadTime();

    abstract @Nullable String getConsumerName();

    abstract @Nullable String getConsumerConfigurationJson();

    abstract @Nullable Double getMaxMessagesPerSecond();

    abstract @Nullable ErrorHandler<BadRecord, ?> getBadRecordErrorHandler();

    abstract Builder toBuilder();

    /** The servers to connect to: comma-separated URLs such as {@code nats://localhost:4222}. */
    public Read withServers(String servers) {
      ConnectionConfiguration current = getConnectionConfiguration();
      return withConnectionConfiguration(
          current == null ? ConnectionConfiguration.create(servers) : current.withServers(servers));
    }

    /** Connects with {@code configuration}: servers, credentials, TLS, timeouts. */
    public Read withConnectionConfiguration(ConnectionConfiguration configuration) {
      return toBuilder().setConnectionConfiguration(requireNonNull(configuration, "configuration")).build();
    }

    /** The JetStream stream to read, by name (not a subject: filter subjects with {@link #withFilterSubjects}). */
    public Read withStream(String stream) {
      return toBuilder().setStream(NatsNames.checkStream(stream, "withStream")).build();
    }

    /**
     * Reads only these subjects of the stream (wildcards allowed). Each filter subject is read as its
     * own partition: its own consumer, position and watermark, the partitions read in parallel, on
     * any nats-server version. No two filters may match the same subject. With {@link
     * #withMaxNumRecords} the read is not partitioned: one consumer reads all the filters, which
     * needs nats-server 2.10+ for more than one.
     */
    public Read withFilterSubjects(String... filterSubjects) {
      return toBuilder().setFilterSubjects(List.copyOf(Arrays.asList(filterSubjects))).build();
    }

    /**
     * Reads {@code numPartitions} partitions of the stream, named by {@code subjectPattern} with its
     * {@code {{partition}}} token replaced by {@code 0 .. numPartitions - 1}: {@code
     * withPartitions("orders.{{partition}}.>", 4)} is {@code withFilterSubjects("orders.0.>",
     * "orders.1.>", "orders.2.>", "orders.3.>")}. That is the numbering of the server's subject
     * mapping {@code "orders.*": "orders.{{partition(4,1)}}.{{wildcard(1)}}"}, which spreads keys
     * over 4 partition tokens. See {@link #withFilterSubjects} for how partitions are read.
     */
    public Read withPartitions(String subjectPattern, int numPartitions) {
      return toBuilder().setFilterSubjects(StreamPartitions.subjects(subjectPattern, numPartitions)).build();
    }

    /** Starts at this stream sequence (or the first one after it that exists). */
    public Read withStartSequence(long startSequence) {
      return toBuilder().setStartSequence(startSequence).build();
    }

    /** Starts at the first message stored at or after this time. */
    public Read withStartTime(Instant startTime) {
      return toBuilder().setStartTime(requireNonNull(startTime)).build();
    }

    /** Stops before this sequence (exclusive): the read is bounded. */
    public Read withStopSequence(long stopSequence) {
      return toBuilder().setStopSequence(stopSequence).build();
    }

    /** Stops before the first message stored at or after this time: the read is bounded. */
    public Read withStopTime(Instant stopTime) {
      return toBuilder().setStopTime(requireNonNull(stopTime)).build();
    }

    /** Stops after the stream's last message as of when the read starts: the read is bounded. */
    public Read withStopAtEndOfStream() {
      return toBuilder().setStopAtEndOfStream(true).build();
    }

    /** Stamps each message with the time it was read; the watermark is wall time. */
    public Read withProcessingTime() {
      return toBuilder().setTimestampPolicy(TimestampPolicy.PROCESSING_TIME).setTimestampFn(null).build();
    }

    /**
     * Stamps each message with {@code timestampFn(message)}, which may lag by up to {@code maxDelay}
     * (not negative) behind the largest timestamp seen: the watermark trails by that much, and once
     * the read has caught up with the stream it advances to now minus {@code maxDelay}, so windows
     * close on a quiet stream. A function that throws fails the read, or sends the message to
     * {@link #withBadRecordErrorHandler} when one is given.
     */
    public Read withTimestampFn(SerializableFunction<NatsMessage, Instant> timestampFn, Duration maxDelay) {
      return toBuilder()
          .setTimestampPolicy(TimestampPolicy.TIMESTAMP_FN)
          .setTimestampFn(requireNonNull(timestampFn, "timestampFn"))
          .setMaxDelay(nonNegative(maxDelay, "withTimestampFn", "maxDelay"))
          .build();
    }

    /**
     * How far behind now the watermark of a caught-up, publish-time read stays (default 2 s; not
     * negative). It covers clock skew between workers and servers: larger is safer, smaller closes
     * windows sooner. Stream reads only: Core subject and durable-consumer reads, whose watermark is
     * wall time, refuse it.
     */
    public Read withIdleWatermarkDelay(Duration idleWatermarkDelay) {
      return toBuilder().setIdleWatermarkDelay(nonNegative(idleWatermarkDelay, "withIdleWatermarkDelay", "idleWatermarkDelay")).build();
    }

    /**
     * For a {@link #withStream} read with {@link #withTimestampFn}: a message whose timestamp
     * function throws goes to {@code errorHandler} as a {@link BadRecord} (with the message and the
     * exception) instead of failing the pipeline. A live read with a handler takes the splittable
     * DoFn form on every runner (a Beam source has no second output), also on Flink; see {@code
     * docs/runners.md}.
     */
    public Read withBadRecordErrorHandler(ErrorHandler<BadRecord, ?> errorHandler) {
      return toBuilder().setBadRecordErrorHandler(requireNonNull(errorHandler, "errorHandler")).build();
    }

    /**
     * A bounded range is split up front into pieces of this many sequences (default 100,000).
     * Stream reads only: Core subject and durable-consumer reads refuse it.
     */
    public Read withSplitSize(long splitSize) {
      return toBuilder().setSplitSize(splitSize).build();
    }

    /**
     * How many messages each reader pulls ahead of processing (default 1,000). Stream and
     * durable-consumer reads; a Core subject read refuses it (see {@link #withMaxBufferedMessages}).
     */
    public Read withBatchSize(int batchSize) {
      return toBuilder().setBatchSize(batchSize).build();
    }

    /**
     * Reads a Core NATS subject (wildcards allowed) instead of a stream: an unbounded, at-most-once
     * read of a plain subscription, with processing-time timestamps. Messages published while no
     * subscription is open, or beyond the buffer between bundles ({@link
     * #withMaxBufferedMessages}), are lost; losses from a full buffer are counted in the {@code
     * NatsIO/coreMessagesDropped} metric and logged. See <a href="doc-files/delivery-modes.md">docs/delivery-modes.md</a>.
     */
    public Read withSubject(String subject) {
      return toBuilder().setSubject(requireNonNull(subject, "subject")).build();
    }

    /**
     * Joins this queue group for a {@link #withSubject} read: each message goes to one member of
     * the group, so several pipelines (or other NATS clients) share the subject's messages.
     */
    public Read withQueueGroup(String queueGroup) {
      return toBuilder().setQueueGroup(requireNonNull(queueGroup, "queueGroup")).build();
    }

    /**
     * For a {@link #withSubject} read with {@link #withQueueGroup}: how many subscriptions the read
     * opens in the group (default 1), each its own element of work that the runner places on a
     * worker, so a pipeline's own readers share the subject's messages in parallel, each message
     * going to one of them. A record or time limit applies to each reader.
     */
    public Read withNumReaders(int numReaders) {
      return toBuilder().setNumReaders(numReaders).build();
    }

    /**
     * For a {@link #withSubject} read: how many received messages each worker holds between
     * bundles (default 10,000; also at most 64 MiB). Beyond that, new messages are dropped, counted
     * in {@code NatsIO/coreMessagesDropped} and logged.
     */
    public Read withMaxBufferedMessages(int maxBufferedMessages) {
      return toBuilder().setMaxBufferedMessages(maxBufferedMessages).build();
    }

    /**
     * Stops after this many messages: the read becomes bounded. Applies to the whole read (it is
     * then not split), for JetStream and Core subjects alike; with a stop as well, whichever comes
     * first ends the read.
     */
    public Read withMaxNumRecords(long maxNumRecords) {
      return toBuilder().setMaxNumRecords(maxNumRecords).build();
    }

    /**
     * Stops reading this long after the read starts (wall time): the read becomes bounded. As with
     * {@link #withMaxNumRecords}, the whole read is one unsplit range, and any stop or record limit
     * that comes first ends it sooner.
     */
    public Read withMaxReadTime(Duration maxReadTime) {
      return toBuilder().setMaxReadTime(requireNonNull(maxReadTime, "maxReadTime")).build();
    }

    /**
     * Reads the stream through this existing durable pull consumer, acknowledging each message after
     * the runner has committed it: <b>at-least-once</b>, and the way to drain work-queue and interest
     * streams (the default position-tracked read never acknowledges, so it cannot). The consumer
     * keeps the position; a message not acknowledged within its ack wait (a failed bundle, a worker
     * lost) comes back with {@link NatsMessage#getDeliveredCount()} above 1, counted in the {@code
     * NatsIO/messagesRedelivered} metric.
     *
     * <p>Needs a runner that finalizes bundles: the Direct runner, Flink in streaming mode with
     * checkpointing (refused at construction otherwise), Dataflow Runner v2. Messages waiting for
     * their commit are kept alive with in-progress acks, so the ack wait may be shorter than the time
     * from read to commit (Flink: the checkpoint interval); set the consumer's max ack pending above
     * the messages read between commits. The read uses as many pullers on the consumer as the job's
     * parallelism (one when it has a record or time limit). Elements carry processing-time
     * timestamps (the publish time stays in {@link NatsMessage#getTimestamp()}); start, stop and
     * filter options belong to the consumer, not the read. See <a href="doc-files/delivery-modes.md">docs/delivery-modes.md</a>.
     */
    public Read withConsumer(String consumerName) {
      return toBuilder().setConsumerName(NatsNames.checkConsumer(consumerName, "withConsumer")).setConsumerConfigurationJson(null).build();
    }

    /**
     * As {@link #withConsumer}, creating the durable pull consumer from {@code configuration} first,
     * or updating it (the server accepts only some changes to an existing consumer). The
     * configuration needs a durable name and explicit acks (jnats's default); set its filter,
     * deliver policy, ack wait and max ack pending here.
     */
    public Read withConsumerConfiguration(ConsumerConfiguration configuration) {
      requireNonNull(configuration, "configuration");
      String name = configuration.getDurable() != null ? configuration.getDurable() : configuration.getName();
      if (name == null || name.isBlank()) {
        throw new IllegalArgumentException(
            "withConsumerConfiguration needs a durable consumer: give it a name with ConsumerConfiguration.builder().durable(\"name\").");
      }
      if (configuration.getDurable() == null) {
        throw new IllegalArgumentException(
            "withConsumerConfiguration(" + name + ") is not durable: an ephemeral consumer would lose its position and pending "
                + "acks between bundles. Use ConsumerConfiguration.builder().durable(\"" + name + "\").");
      }
      if (configuration.getDeliverSubject() != null) {
        throw new IllegalArgumentException(
            "withConsumerConfiguration(" + name + ") has a deliver subject (a push consumer); NatsIO pulls: remove deliverSubject.");
      }
      if (configuration.getAckPolicy() != AckPolicy.Explicit) {
        throw new IllegalArgumentException(
            "withConsumerConfiguration(" + name + ") has ack policy " + configuration.getAckPolicy()
                + "; NatsIO acknowledges each message after the runner commits it: use AckPolicy.Explicit.");
      }
      return toBuilder().setConsumerName(NatsNames.checkConsumer(name, "withConsumerConfiguration"))
          .setConsumerConfigurationJson(configuration.toJson()).build();
    }

    /**
     * Outputs at most this many messages per second <b>per reader</b>. An unbounded stream read, a
     * durable-consumer read and a Core subject read with one reader are each one reader, so for them
     * this is the rate of the whole read; a bounded stream read is split into pieces of {@link
     * #withSplitSize} sequences read in parallel, each at up to this rate (raise the split size to
     * read it as one piece), and a Core read with {@link #withNumReaders}{@code (n)} has n readers,
     * each at up to this rate. Each reader may let one extra message through when it starts. Messages
     * wait in the server (JetStream) or the subscription's buffer (Core) meanwhile.
     */
    public Read withMaxMessagesPerSecond(double maxMessagesPerSecond) {
      return toBuilder().setMaxMessagesPerSecond(maxMessagesPerSecond).build();
    }

    /** The durable consumer a {@link #withConsumer} read uses. */
    String consumerName() {
      return getConsumerName();
    }

    boolean isBounded() {
      return getStopSequence() != null || getStopTime() != null || getStopAtEndOfStream() || hasLimits();
    }

    boolean hasLimits() {
      return getMaxNumRecords() != null || getMaxReadTime() != null;
    }

    @Override
    public PCollection<NatsMessage> expand(PBegin input) {
      validate();
      validateRate(getMaxMessagesPerSecond());
      if (!isBounded()) {
        RunnerOptions.warnIfCheckpointsHoldWatermarksBack(input.getPipeline().getOptions());
      }
      if (getSubject() != null) {
        return input
            .apply("Impulse", Impulse.create())
            .apply("Readers", ParDo.of(new ReadFromCoreSubjectDoFn.ReaderIndexes(getNumReaders())))
            .apply("Read subject " + getSubject(), ParDo.of(ReadFromCoreSubjectDoFn.create(this)))
            .setCoder(NatsMessageCoder.of());
      }
      if (getConsumerName() != null) {
        String problem = ReadFromDurableConsumerDoFn.finalizationProblem(input.getPipeline().getOptions(), hasLimits());
        if (problem != null) {
          throw new IllegalStateException(problem);
        }
        return input
            .apply("Impulse", Impulse.create())
            // A record or time limit applies to the whole read, so a limited read has one puller.
            .apply("Pullers", ParDo.of(new ReadFromCoreSubjectDoFn.ReaderIndexes(
                hasLimits() ? 1 : ReadFromDurableConsumerDoFn.pullers(input.getPipeline().getOptions()))))
            .apply("Read stream " + getStream() + " through consumer " + getConsumerName(),
                ParDo.of(ReadFromDurableConsumerDoFn.create(this)))
            .setCoder(NatsMessageCoder.of());
      }
      NatsSourceDescriptor descriptor = toDescriptor();
      if (!isBounded() && getBadRecordErrorHandler() == null && JetStreamUnboundedSource.isPreferredOn(input.getPipeline().getOptions())) {
        // A live tail on a runner that runs sources natively (classic Flink): see JetStreamUnboundedSource,
        // whose split() makes one split per partition.
        // It reads batches (see NatsMessageBatch for why), made single messages again at once.
        return input
            .apply("Read stream " + descriptor.getStream(),
                org.apache.beam.sdk.io.Read.from(new JetStreamBatchSource(new JetStreamUnboundedSource(toReadSourceDescriptors(), descriptor))))
            .apply("Messages of stream " + descriptor.getStream(), ParDo.of(new NatsMessageBatch.Unbatch()))
            .setCoder(NatsMessageCoder.of());
      }
      // A record limit covers the whole read, so it stays one descriptor; otherwise one per partition.
      List<NatsSourceDescriptor> partitions =
          getMaxNumRecords() != null ? List.of(descriptor) : StreamPartitions.of(descriptor);
      PCollection<NatsSourceDescriptor> descriptors = input
          .apply("Impulse", Impulse.create())
          .apply("Describe stream " + descriptor.getStream(),
              FlatMapElements.into(TypeDescriptor.of(NatsSourceDescriptor.class)).via(new ConstantDescriptors(partitions)));
      if (partitions.size() > 1) {
        // Runners that run a splittable DoFn where its input is (Flink batch) would read every partition on one worker.
        descriptors = descriptors.apply("Spread partitions", Reshuffle.viaRandomKey());
      }
      return descriptors.apply("Read stream " + descriptor.getStream(),
          getBadRecordErrorHandler() == null
              ? toReadSourceDescriptors()
              : toReadSourceDescriptors().withBadRecordErrorHandler(getBadRecordErrorHandler()));
    }

    private void validate() {
      if (getConnectionConfiguration() == null) {
        throw new IllegalArgumentException(
            "NatsIO.read() needs servers: call withServers(\"nats://host:4222\") or withConnectionConfiguration(...).");
      }
      getConnectionConfiguration().validate();
      validateLimits(getMaxNumRecords(), getMaxReadTime());
      if (getSubject() != null) {
        validateCoreRead();
        return;
      }
      if (getQueueGroup() != null || getNumReaders() != 1) {
        throw new IllegalArgumentException(
            "NatsIO.read() withQueueGroup and withNumReaders apply to Core subject reads: add withSubject(\"subject\"), or drop them.");
      }
      if (getStream() == null || getStream().isBlank()) {
        throw new IllegalArgumentException(
            "NatsIO.read() needs a JetStream stream or a Core subject: call withStream(\"name\") or withSubject(\"subject\").");
      }
      if (getConsumerName() != null) {
        validateDurableRead();
        return;
      }
      refuseSettingsOfOtherModes(
          "a position-tracked stream read (withStream without withConsumer)",
          getMaxBufferedMessages() != DEFAULT_MAX_BUFFERED_MESSAGES ? "withMaxBufferedMessages (Core subject reads)" : null);
      NatsSourceDescriptor.validatePositions(
          "NatsIO.read()", getStream(), getFilterSubjects(), getStartSequence(), getStartTime(), getStopSequence(), getStopTime(),
          getStopAtEndOfStream());
      StreamPartitions.requireDisjoint(getFilterSubjects());
      validateTuning(getSplitSize(), getBatchSize());
    }

    private void validateCoreRead() {
      if (getSubject().isBlank()) {
        throw new IllegalArgumentException("NatsIO.read() withSubject has an empty subject.");
      }
      if (getStream() != null) {
        throw new IllegalArgumentException(
            "NatsIO.read() has both withStream and withSubject: a read is either a JetStream stream or a Core subject. "
                + "To read a subject that a stream captures, use withStream(...).withFilterSubjects(subject).");
      }
      if (!getFilterSubjects().isEmpty() || getStartSequence() != null || getStartTime() != null
          || getStopSequence() != null || getStopTime() != null || getStopAtEndOfStream()) {
        throw new IllegalArgumentException(
            "NatsIO.read() withSubject reads a Core subscription, which has no positions: filter subjects, start and stop "
                + "options apply to withStream reads only. Bound a Core read with withMaxNumRecords or withMaxReadTime.");
      }
      if (getTimestampPolicy() != TimestampPolicy.PUBLISH_TIME) {
        throw new IllegalArgumentException(
            "NatsIO.read() withSubject always uses processing time (Core messages carry no publish time): "
                + "drop withProcessingTime / withTimestampFn, and assign event times downstream if needed.");
      }
      if (getConsumerName() != null) {
        throw new IllegalArgumentException(
            "NatsIO.read() has both withSubject and withConsumer: a durable consumer reads a JetStream stream. Use "
                + "withStream(\"name\").withConsumer(\"" + getConsumerName() + "\"), or drop withConsumer.");
      }
      refuseSettingsOfOtherModes(
          "a Core subject read (withSubject)",
          !getIdleWatermarkDelay().equals(DEFAULT_IDLE_WATERMARK_DELAY) ? "withIdleWatermarkDelay (position-tracked stream reads)" : null,
          getSplitSize() != DEFAULT_SPLIT_SIZE ? "withSplitSize (position-tracked stream reads)" : null,
          getBatchSize() != DEFAULT_BATCH_SIZE ? "withBatchSize (stream and durable-consumer reads)" : null,
          getBadRecordErrorHandler() != null ? BAD_RECORDS_OF_STREAM_READS : null);
      if (getMaxBufferedMessages() < 1) {
        throw new IllegalArgumentException("NatsIO.read() withMaxBufferedMessages(" + getMaxBufferedMessages() + ") must be at least 1.");
      }
      if (getNumReaders() < 1) {
        throw new IllegalArgumentException("NatsIO.read() withNumReaders(" + getNumReaders() + ") must be at least 1.");
      }
      if (getNumReaders() > 1 && getQueueGroup() == null) {
        throw new IllegalArgumentException(
            "NatsIO.read() withNumReaders(" + getNumReaders() + ") needs withQueueGroup(\"group\"): without a queue group "
                + "every reader would receive every message.");
      }
    }

    private void validateDurableRead() {
      if (getConsumerName().isBlank()) {
        throw new IllegalArgumentException("NatsIO.read() withConsumer has an empty consumer name.");
      }
      if (!getFilterSubjects().isEmpty() || getStartSequence() != null || getStartTime() != null
          || getStopSequence() != null || getStopTime() != null || getStopAtEndOfStream()) {
        throw new IllegalArgumentException(
            "NatsIO.read() withConsumer reads where durable consumer '" + getConsumerName() + "' is: filter subjects and the "
                + "start belong to the consumer's configuration (withConsumerConfiguration), and it has no stop. Bound the "
                + "read with withMaxNumRecords or withMaxReadTime.");
      }
      if (getTimestampPolicy() == TimestampPolicy.TIMESTAMP_FN) {
        throw new IllegalArgumentException(
            "NatsIO.read() withConsumer uses processing time: redeliveries arrive out of order, so event-time timestamps "
                + "could fall behind the watermark. Drop withTimestampFn and assign event times downstream if needed.");
      }
      refuseSettingsOfOtherModes(
          "a durable-consumer read (withConsumer)",
          !getIdleWatermarkDelay().equals(DEFAULT_IDLE_WATERMARK_DELAY) ? "withIdleWatermarkDelay (position-tracked stream reads)" : null,
          getSplitSize() != DEFAULT_SPLIT_SIZE ? "withSplitSize (position-tracked stream reads)" : null,
          getMaxBufferedMessages() != DEFAULT_MAX_BUFFERED_MESSAGES ? "withMaxBufferedMessages (Core subject reads)" : null,
          getBadRecordErrorHandler() != null ? BAD_RECORDS_OF_STREAM_READS : null);
      validateTuning(getSplitSize(), getBatchSize());
    }

    private static final String BAD_RECORDS_OF_STREAM_READS =
        "withBadRecordErrorHandler (position-tracked stream reads with withTimestampFn, for messages it fails on)";

    /**
     * Refuses settings that the chosen read mode would ignore; each non-null entry names a setting
     * and, in parentheses, the reads it belongs to.
     */
    private static void refuseSettingsOfOtherModes(String mode, @Nullable String... settings) {
      List<String> ignored = new ArrayList<>();
      for (String setting : settings) {
        if (setting != null) {
          ignored.add(setting);
        }
      }
      if (!ignored.isEmpty()) {
        throw new IllegalArgumentException(
            "NatsIO.read() is " + mode + ", which does not use " + String.join(", ", ignored)
                + ": drop " + (ignored.size() == 1 ? "it" : "them") + ", or configure the read that setting belongs to.");
      }
    }

    NatsSourceDescriptor toDescriptor() {
      return NatsSourceDescriptor.builder()
          .setStream(getStream())
          .setFilterSubjects(getFilterSubjects())
          .setStartSequence(getStartSequence())
          .setStartTime(getStartTime())
          .setStopSequence(getStopSequence())
          .setStopTime(getStopTime())
          .setStopAtEndOfStream(getStopAtEndOfStream())
          .build();
    }

    ReadSourceDescriptors toReadSourceDescriptors() {
      return readSourceDescriptors().toBuilder()
          .setConnectionConfiguration(getConnectionConfiguration())
          .setTimestampPolicy(getTimestampPolicy())
          .setTimestampFn(getTimestampFn())
          .setMaxDelay(getMaxDelay())
          .setIdleWatermarkDelay(getIdleWatermarkDelay())
          .setSplitSize(getSplitSize())
          .setBatchSize(getBatchSize())
          .setBounded(isBounded())
          .setMaxNumRecords(getMaxNumRecords())
          .setMaxReadTime(getMaxReadTime())
          .setMaxMessagesPerSecond(getMaxMessagesPerSecond())
          .build();
    }

    @Override
    public void populateDisplayData(DisplayData.Builder builder) {
      super.populateDisplayData(builder);
      if (getConnectionConfiguration() != null) {
        getConnectionConfiguration().populateDisplayData(builder);
      }
      builder.addIfNotNull(DisplayData.item("stream", getStream()).withLabel("JetStream stream"));
      builder.addIfNotNull(DisplayData.item("subject", getSubject()).withLabel("Core NATS subject"));
      builder.addIfNotNull(DisplayData.item("queueGroup", getQueueGroup()));
      if (getNumReaders() > 1) {
        builder.add(DisplayData.item("numReaders", getNumReaders()));
      }
      builder.addIfNotNull(DisplayData.item("consumer", getConsumerName()).withLabel("JetStream durable consumer"));
      if (getSubject() != null) {
        builder.add(DisplayData.item("maxBufferedMessages", getMaxBufferedMessages()));
      }
      builder.addIfNotNull(DisplayData.item("maxNumRecords", getMaxNumRecords()));
      builder.addIfNotNull(DisplayData.item("maxReadTime", getMaxReadTime()));
      builder.addIfNotNull(DisplayData.item("maxMessagesPerSecond", getMaxMessagesPerSecond()));
      if (!getFilterSubjects().isEmpty()) {
        builder.add(DisplayData.item("filterSubjects", String.join(",", getFilterSubjects())));
      }
      builder.addIfNotNull(DisplayData.item("startSequence", getStartSequence()));
      builder.addIfNotNull(DisplayData.item("startTime", getStartTime()));
      builder.addIfNotNull(DisplayData.item("stopSequence", getStopSequence()));
      builder.addIfNotNull(DisplayData.item("stopTime", getStopTime()));
      if (getStopAtEndOfStream()) {
        builder.add(DisplayData.item("stopAtEndOfStream", true));
      }
      builder.add(DisplayData.item("timestampPolicy", getTimestampPolicy().name()));
      builder.add(DisplayData.item("idleWatermarkDelay", getIdleWatermarkDelay()));
      builder.add(DisplayData.item("splitSize", getSplitSize()));
    }

    @AutoValue.Builder
    abstract static class Builder {
      abstract Builder setConnectionConfiguration(ConnectionConfiguration configuration);

      abstract Builder setStream(String stream);

      abstract Builder setFilterSubjects(List<String> filterSubjects);

      abstract Builder setStartSequence(@Nullable Long startSequence);

      abstract Builder setStartTime(@Nullable Instant startTime);

      abstract Builder setStopSequence(@Nullable Long stopSequence);

      abstract Builder setStopTime(@Nullable Instant stopTime);

      abstract Builder setStopAtEndOfStream(boolean stopAtEndOfStream);

      abstract Builder setTimestampPolicy(TimestampPolicy timestampPolicy);

      abstract Builder setTimestampFn(@Nullable SerializableFunction<NatsMessage, Instant> timestampFn);

      abstract Builder setMaxDelay(Duration maxDelay);

      abstract Builder setIdleWatermarkDelay(Duration idleWatermarkDelay);

      abstract Builder setSplitSize(long splitSize);

      abstract Builder setBatchSize(int batchSize);

      abstract Builder setSubject(@Nullable String subject);

      abstract Builder setQueueGroup(@Nullable String queueGroup);

      abstract Builder setNumReaders(int numReaders);

      abstract Builder setMaxBufferedMessages(int maxBufferedMessages);

      abstract Builder setMaxNumRecords(@Nullable Long maxNumRecords);

      abstract Builder setMaxReadTime(@Nullable Duration maxReadTime);

      abstract Builder setConsumerName(@Nullable String consumerName);

      abstract Builder setConsumerConfigurationJson(@Nullable String json);

      abstract Builder setMaxMessagesPerSecond(@Nullable Double maxMessagesPerSecond);

      abstract Builder setBadRecordErrorHandler(@Nullable ErrorHandler<BadRecord, ?> errorHandler);

      abstract Read build();
    }
  }

  /** Maps the impulse to the read's descriptors: one per partition. */
  private static final class ConstantDescriptors implements SerializableFunction<byte[], Iterable<NatsSourceDescriptor>> {
    private final List<NatsSourceDescriptor> descriptors;

    ConstantDescriptors(List<NatsSourceDescriptor> descriptors) {
      this.descriptors = descriptors;
    }

    @Override
    public Iterable<NatsSourceDescriptor> apply(byte[] impulse) {
      return descriptors;
    }
  }

  // ---- ReadSourceDescriptors -------------------------------------------------------------------

  /**
   * Reads every stream a {@code PCollection<NatsSourceDescriptor>} names, each as its own range of
   * sequences. Unbounded unless {@link #withBounded()}, which requires every descriptor to stop.
   */
  @AutoValue
  public abstract static class ReadSourceDescriptors
      extends PTransform<PCollection<NatsSourceDescriptor>, PCollection<NatsMessage>> {
    // Fixed: on Flink the unbounded read's source, which holds this transform's settings, is
    // Java-serialized into checkpoints and savepoints.
    private static final long serialVersionUID = 1L;

    abstract @Nullable ConnectionConfiguration getConnectionConfiguration();

    abstract TimestampPolicy getTimestampPolicy();

    abstract @Nullable SerializableFunction<NatsMessage, Instant> getTimestampFn();

    abstract Duration getMaxDelay();

    abstract Duration getIdleWatermarkDelay();

    abstract long getSplitSize();

    abstract int getBatchSize();

    abstract boolean isBounded();

    abstract @Nullable Long getMaxNumRecords();

    abstract @Nullable Duration getMaxReadTime();

    abstract @Nullable Double getMaxMessagesPerSecond();

    abstract @Nullable ErrorHandler<BadRecord, ?> getBadRecordErrorHandler();

    abstract Builder toBuilder();

    boolean hasLimits() {
      return getMaxNumRecords() != null || getMaxReadTime() != null;
    }

    /** The event timestamp this read gives {@code message}, which the server stored at {@code publishTime}. */
    Instant timestampOf(NatsMessage message, Instant publishTime) {
      switch (getTimestampPolicy()) {
        case PROCESSING_TIME:
          return Instant.now();
        case TIMESTAMP_FN:
          return getTimestampFn().apply(message);
        case PUBLISH_TIME:
        default:
          return publishTime;
      }
    }

    /**
     * How far a message with event time {@code timestamp} lets the watermark go: to the timestamp
     * itself, or, with a timestamp function, to the timestamp less the allowed delay (later
     * messages may be that much older).
     */
    Instant watermarkAfter(Instant timestamp) {
      return getTimestampPolicy() == TimestampPolicy.TIMESTAMP_FN ? timestamp.minus(getMaxDelay()) : timestamp;
    }

    /** The servers to connect to: comma-separated URLs such as {@code nats://localhost:4222}. */
    public ReadSourceDescriptors withServers(String servers) {
      ConnectionConfiguration current = getConnectionConfiguration();
      return withConnectionConfiguration(
          current == null ? ConnectionConfiguration.create(servers) : current.withServers(servers));
    }

    /** Connects with {@code configuration}: servers, credentials, TLS, timeouts. */
    public ReadSourceDescriptors withConnectionConfiguration(ConnectionConfiguration configuration) {
      return toBuilder().setConnectionConfiguration(requireNonNull(configuration, "configuration")).build();
    }

    /** The output is bounded; every descriptor must then have a stop. */
    public ReadSourceDescriptors withBounded() {
      return toBuilder().setBounded(true).build();
    }

    /** See {@link Read#withProcessingTime()}. */
    public ReadSourceDescriptors withProcessingTime() {
      return toBuilder().setTimestampPolicy(TimestampPolicy.PROCESSING_TIME).setTimestampFn(null).build();
    }

    /** See {@link Read#withTimestampFn}. */
    public ReadSourceDescriptors withTimestampFn(SerializableFunction<NatsMessage, Instant> timestampFn, Duration maxDelay) {
      return toBuilder()
          .setTimestampPolicy(TimestampPolicy.TIMESTAMP_FN)
          .setTimestampFn(requireNonNull(timestampFn, "timestampFn"))
          .setMaxDelay(nonNegative(maxDelay, "withTimestampFn", "maxDelay"))
          .build();
    }

    /** See {@link Read#withIdleWatermarkDelay}. */
    public ReadSourceDescriptors withIdleWatermarkDelay(Duration idleWatermarkDelay) {
      return toBuilder().setIdleWatermarkDelay(nonNegative(idleWatermarkDelay, "withIdleWatermarkDelay", "idleWatermarkDelay")).build();
    }

    /** See {@link Read#withBadRecordErrorHandler}. */
    public ReadSourceDescriptors withBadRecordErrorHandler(ErrorHandler<BadRecord, ?> errorHandler) {
      return toBuilder().setBadRecordErrorHandler(requireNonNull(errorHandler, "errorHandler")).build();
    }

    /** See {@link Read#withSplitSize}. */
    public ReadSourceDescriptors withSplitSize(long splitSize) {
      return toBuilder().setSplitSize(splitSize).build();
    }

    /** See {@link Read#withBatchSize}. */
    public ReadSourceDescriptors withBatchSize(int batchSize) {
      return toBuilder().setBatchSize(batchSize).build();
    }

    /**
     * Each descriptor's read stops after this many messages; the output is bounded, and descriptors
     * without a stop are allowed. See {@link Read#withMaxNumRecords}.
     */
    public ReadSourceDescriptors withMaxNumRecords(long maxNumRecords) {
      return toBuilder().setMaxNumRecords(maxNumRecords).build();
    }

    /**
     * Each descriptor's read stops this long after it starts; the output is bounded. See {@link
     * Read#withMaxReadTime}.
     */
    public ReadSourceDescriptors withMaxReadTime(Duration maxReadTime) {
      return toBuilder().setMaxReadTime(requireNonNull(maxReadTime, "maxReadTime")).build();
    }

    /** At most this many messages per second per reader (each descriptor's range, or piece of one). See {@link Read#withMaxMessagesPerSecond}. */
    public ReadSourceDescriptors withMaxMessagesPerSecond(double maxMessagesPerSecond) {
      return toBuilder().setMaxMessagesPerSecond(maxMessagesPerSecond).build();
    }

    @Override
    public PCollection<NatsMessage> expand(PCollection<NatsSourceDescriptor> input) {
      if (getConnectionConfiguration() == null) {
        throw new IllegalArgumentException(
            "NatsIO.readSourceDescriptors() needs servers: call withServers(\"nats://host:4222\") or withConnectionConfiguration(...).");
      }
      getConnectionConfiguration().validate();
      validateTuning(getSplitSize(), getBatchSize());
      validateLimits(getMaxNumRecords(), getMaxReadTime());
      validateRate(getMaxMessagesPerSecond());
      RunnerOptions.warnIfCheckpointsHoldWatermarksBack(input.getPipeline().getOptions());
      ErrorHandler<BadRecord, ?> errorHandler = getBadRecordErrorHandler();
      // The DoFn gets the settings without the handler, which holds the pipeline's error collections.
      ReadFromJetStreamDoFn fn = ReadFromJetStreamDoFn.create(toBuilder().setBadRecordErrorHandler(null).build(), errorHandler != null);
      // The bad-record output only when there is a handler for it: Flink batch sends every output
      // of a step with several through its network stack (a union of the outputs, split again by
      // one step per output), where a single output stays chained to the next step. Measured: the
      // message encoding on the read's thread was about a sixth of its time.
      PCollectionTuple outputs = input.apply(ParDo.of(fn).withOutputTags(ReadFromJetStreamDoFn.MESSAGES,
          errorHandler == null ? TupleTagList.empty() : TupleTagList.of(BadRecordRouter.BAD_RECORD_TAG)));
      if (errorHandler != null) {
        errorHandler.addErrorCollection(
            outputs.get(BadRecordRouter.BAD_RECORD_TAG).setCoder(BadRecord.getCoder(input.getPipeline())));
      }
      return outputs.get(ReadFromJetStreamDoFn.MESSAGES).setCoder(NatsMessageCoder.of());
    }

    @Override
    public void populateDisplayData(DisplayData.Builder builder) {
      super.populateDisplayData(builder);
      if (getConnectionConfiguration() != null) {
        getConnectionConfiguration().populateDisplayData(builder);
      }
      builder.add(DisplayData.item("timestampPolicy", getTimestampPolicy().name()));
      builder.add(DisplayData.item("bounded", isBounded() || hasLimits()));
      builder.addIfNotNull(DisplayData.item("maxNumRecords", getMaxNumRecords()));
      builder.addIfNotNull(DisplayData.item("maxReadTime", getMaxReadTime()));
      builder.addIfNotNull(DisplayData.item("maxMessagesPerSecond", getMaxMessagesPerSecond()));
    }

    @AutoValue.Builder
    abstract static class Builder {
      abstract Builder setConnectionConfiguration(@Nullable ConnectionConfiguration configuration);

      abstract Builder setTimestampPolicy(TimestampPolicy timestampPolicy);

      abstract Builder setTimestampFn(@Nullable SerializableFunction<NatsMessage, Instant> timestampFn);

      abstract Builder setMaxDelay(Duration maxDelay);

      abstract Builder setIdleWatermarkDelay(Duration idleWatermarkDelay);

      abstract Builder setSplitSize(long splitSize);

      abstract Builder setBatchSize(int batchSize);

      abstract Builder setBounded(boolean bounded);

      abstract Builder setMaxNumRecords(@Nullable Long maxNumRecords);

      abstract Builder setMaxReadTime(@Nullable Duration maxReadTime);

      abstract Builder setMaxMessagesPerSecond(@Nullable Double maxMessagesPerSecond);

      abstract Builder setBadRecordErrorHandler(@Nullable ErrorHandler<BadRecord, ?> errorHandler);

      abstract ReadSourceDescriptors build();
    }
  }

  // ---- Write -----------------------------------------------------------------------------------

  /** JetStream publishes each writer instance keeps unacknowledged, at most (see {@link Write#withMaxInFlight}). */
  static final int DEFAULT_MAX_IN_FLIGHT = 4_096;

  /** A write of {@code PCollection<NatsMessage>} to NATS: configure it with {@code withServers}. */
  public static Write write() {
    return new AutoValue_NatsIO_Write.Builder()
        .setJetStream(false)
        .setMaxInFlight(DEFAULT_MAX_IN_FLIGHT)
        .build();
  }

  /**
   * A {@link PTransform} that publishes every {@link NatsMessage} of its input to NATS, on Core
   * NATS by default or to JetStream with {@link #withJetStream()}. See {@link NatsIO}.
   */
  @AutoValue
  public abstract static class Write extends PTransform<PCollection<NatsMessage>, WriteResult> {
    abstract @Nullable ConnectionConfiguration getConnectionConfiguration();

    abstract @Nullable String getSubject();

    abstract @Nullable SerializableFunction<NatsMessage, String> getSubjectFn();

    abstract boolean isJetStream();

    abstract @Nullable SerializableFunction<NatsMessage, String> getMessageIdFn();

    abstract @Nullable String getExpectedStream();

    abstract int getMaxInFlight();

    abstract @Nullable ErrorHandler<BadRecord, ?> getBadRecordErrorHandler();

    abstract Builder toBuilder();

    /** The servers to connect to: comma-separated URLs such as {@code nats://localhost:4222}. */
    public Write withServers(String servers) {
      ConnectionConfiguration current = getConnectionConfiguration();
      return withConnectionConfiguration(
          current == null ? ConnectionConfiguration.create(servers) : current.withServers(servers));
    }

    /** Connects with {@code configuration}: servers, credentials, TLS, timeouts. */
    public Write withConnectionConfiguration(ConnectionConfiguration configuration) {
      return toBuilder().setConnectionConfiguration(requireNonNull(configuration, "configuration")).build();
    }

    /**
     * Publishes every message to {@code subject}, whatever subject the message carries. Without it
     * (or {@link #withSubjectFn}) each message goes to its own {@link NatsMessage#getSubject()}.
     */
    public Write withSubject(String subject) {
      return toBuilder().setSubject(requireNonNull(subject, "subject")).build();
    }

    /**
     * Publishes each message to the subject {@code subjectFn} gives for it. A message for which it
     * returns null or an empty subject, or throws, is a bad record.
     */
    public Write withSubjectFn(SerializableFunction<NatsMessage, String> subjectFn) {
      return toBuilder().setSubjectFn(requireNonNull(subjectFn, "subjectFn")).build();
    }

    /**
     * Publishes to JetStream and waits for the server to store each message; the result's {@link
     * WriteResult#getPublishResults()} holds each message's stream and sequence. Without it the
     * write uses Core NATS, which confirms nothing.
     */
    public Write withJetStream() {
      return toBuilder().setJetStream(true).build();
    }

    /**
     * Sets each message's {@code Nats-Msg-Id} header to {@code messageIdFn(message)} (JetStream
     * only), replacing any id the message carries. The stream stores a message whose id it has
     * seen within its duplicate window (2 minutes by default) only once, so runner retries and
     * re-runs of the same elements do not store duplicates. The id must be a deterministic function
     * of the element, such as {@code m -> m.getStream() + ":" + m.getSequence()} for a message read
     * from a stream; null publishes the message without an id.
     */
    public Write withMessageIdFn(SerializableFunction<NatsMessage, String> messageIdFn) {
      return toBuilder().setMessageIdFn(requireNonNull(messageIdFn, "messageIdFn")).build();
    }

    /**
     * Refuses any publish that would be stored in a stream other than {@code stream} (JetStream
     * only): the server checks it and the message goes to the bad-record handler.
     */
    public Write withExpectedStream(String stream) {
      return toBuilder().setExpectedStream(NatsNames.checkStream(stream, "withExpectedStream")).build();
    }

    /**
     * At most this many JetStream publishes per DoFn instance await their acknowledgement (default
     * 4,096). More is faster up to a point and holds more messages in
     * memory; every one is awaited before a bundle completes.
     */
    public Write withMaxInFlight(int maxInFlight) {
      return toBuilder().setMaxInFlight(maxInFlight).build();
    }

    /**
     * Sends messages NATS refuses (over the server's max_payload, no stream for the subject, a
     * stream limit with discard-new, a wrong expected stream, a failing subject or id function) to
     * {@code errorHandler} as {@link BadRecord}s, with the subject and the server's reason, instead
     * of failing the pipeline. Publishes that time out are retried, not sent here.
     */
    public Write withBadRecordErrorHandler(ErrorHandler<BadRecord, ?> errorHandler) {
      return toBuilder().setBadRecordErrorHandler(requireNonNull(errorHandler, "errorHandler")).build();
    }

    @Override
    public WriteResult expand(PCollection<NatsMessage> input) {
      validate();
      boolean routeBadRecords = getBadRecordErrorHandler() != null;
      SerializableFunction<NatsMessage, String> subjects = subjectFunction();
      DoFn<NatsMessage, NatsPublishResult> fn =
          isJetStream()
              ? new WriteToJetStreamDoFn(getConnectionConfiguration(), subjects, getMessageIdFn(), getExpectedStream(),
                  getMaxInFlight(), routeBadRecords)
              : new WriteToCoreDoFn(getConnectionConfiguration(), subjects, routeBadRecords);
      PCollectionTuple outputs =
          input.apply(isJetStream() ? "Publish to JetStream" : "Publish to NATS",
              ParDo.of(fn).withOutputTags(WriteResult.PUBLISH_RESULTS, TupleTagList.of(BadRecordRouter.BAD_RECORD_TAG)));
      PCollection<BadRecord> badRecords =
          outputs.get(BadRecordRouter.BAD_RECORD_TAG).setCoder(BadRecord.getCoder(input.getPipeline()));
      if (routeBadRecords) {
        getBadRecordErrorHandler().addErrorCollection(badRecords);
      }
      return new WriteResult(
          input.getPipeline(), outputs.get(WriteResult.PUBLISH_RESULTS).setCoder(NatsPublishResultCoder.of()));
    }

    private SerializableFunction<NatsMessage, String> subjectFunction() {
      if (getSubjectFn() != null) {
        return getSubjectFn();
      }
      String subject = getSubject();
      return subject != null ? message -> subject : NatsMessage::getSubject;
    }

    private void validate() {
      if (getConnectionConfiguration() == null) {
        throw new IllegalArgumentException(
            "NatsIO.write() needs servers: call withServers(\"nats://host:4222\") or withConnectionConfiguration(...).");
      }
      getConnectionConfiguration().validate();
      if (getSubject() != null && getSubjectFn() != null) {
        throw new IllegalArgumentException(
            "NatsIO.write() has both withSubject and withSubjectFn: keep one of them.");
      }
      if (getSubject() != null && getSubject().isBlank()) {
        throw new IllegalArgumentException(
            "NatsIO.write() withSubject(\"" + getSubject() + "\"): the subject is empty; give one like \"orders.eu\".");
      }
      if (!isJetStream() && getMessageIdFn() != null) {
        throw new IllegalArgumentException(
            "NatsIO.write() withMessageIdFn needs withJetStream(): only JetStream deduplicates by message id.");
      }
      if (!isJetStream() && getExpectedStream() != null) {
        throw new IllegalArgumentException(
            "NatsIO.write() withExpectedStream needs withJetStream(): Core NATS publishes are not stored in streams.");
      }
      if (getExpectedStream() != null && getExpectedStream().isBlank()) {
        throw new IllegalArgumentException("NatsIO.write() withExpectedStream has an empty stream name.");
      }
      if (getMaxInFlight() < 1) {
        throw new IllegalArgumentException(
            "NatsIO.write() withMaxInFlight(" + getMaxInFlight() + ") must be at least 1; the default is "
                + DEFAULT_MAX_IN_FLIGHT + ".");
      }
    }

    @Override
    public void populateDisplayData(DisplayData.Builder builder) {
      super.populateDisplayData(builder);
      if (getConnectionConfiguration() != null) {
        getConnectionConfiguration().populateDisplayData(builder);
      }
      builder.add(DisplayData.item("publishTo", isJetStream() ? "JetStream" : "Core NATS"));
      builder.addIfNotNull(DisplayData.item("subject", getSubject()).withLabel("NATS subject"));
      if (getSubjectFn() != null) {
        builder.add(DisplayData.item("subjectFn", getSubjectFn().getClass()));
      }
      if (getMessageIdFn() != null) {
        builder.add(DisplayData.item("messageIdFn", getMessageIdFn().getClass()));
      }
      builder.addIfNotNull(DisplayData.item("expectedStream", getExpectedStream()));
      if (isJetStream()) {
        builder.add(DisplayData.item("maxInFlight", getMaxInFlight()));
      }
      builder.add(DisplayData.item("badRecordErrorHandler", getBadRecordErrorHandler() != null));
    }

    @AutoValue.Builder
    abstract static class Builder {
      abstract Builder setConnectionConfiguration(ConnectionConfiguration configuration);

      abstract Builder setSubject(@Nullable String subject);

      abstract Builder setSubjectFn(@Nullable SerializableFunction<NatsMessage, String> subjectFn);

      abstract Builder setJetStream(boolean jetStream);

      abstract Builder setMessageIdFn(@Nullable SerializableFunction<NatsMessage, String> messageIdFn);

      abstract Builder setExpectedStream(@Nullable String expectedStream);

      abstract Builder setMaxInFlight(int maxInFlight);

      abstract Builder setBadRecordErrorHandler(@Nullable ErrorHandler<BadRecord, ?> badRecordErrorHandler);

      abstract Write build();
    }
  }

  /**
   * The output of {@link NatsIO#write()}: {@link #getPublishResults()} holds one {@link
   * NatsPublishResult} per message JetStream stored (or recognised as a duplicate), in the
   * message's window. It is empty for a Core write, which the server does not acknowledge.
   */
  public static final class WriteResult implements POutput {
    static final TupleTag<NatsPublishResult> PUBLISH_RESULTS = new TupleTag<NatsPublishResult>() {};

    private final Pipeline pipeline;
    private final PCollection<NatsPublishResult> publishResults;

    WriteResult(Pipeline pipeline, PCollection<NatsPublishResult> publishResults) {
      this.pipeline = pipeline;
      this.publishResults = publishResults;
    }

    /** One result per message stored by JetStream, output once its bundle's publishes are all acknowledged. */
    public PCollection<NatsPublishResult> getPublishResults() {
      return publishResults;
    }

    @Override
    public Pipeline getPipeline() {
      return pipeline;
    }

    @Override
    public Map<TupleTag<?>, PValue> expand() {
      return Collections.singletonMap(PUBLISH_RESULTS, publishResults);
    }

    @Override
    public void finishSpecifyingOutput(String transformName, PInput input, PTransform<?, ?> transform) {}
  }

  // ---- Key/Value buckets -----------------------------------------------------------------------

  /**
   * A read of a JetStream Key/Value bucket as a changelog: configure it with {@code withServers}
   * and {@code withBucket}. See {@link ReadKeyValue}.
   */
  public static ReadKeyValue readKeyValue() {
    return new AutoValue_NatsIO_ReadKeyValue.Builder()
        .setKeys(List.of())
        .setHistory(false)
        .setStopAtCurrentRevision(false)
        .build();
  }

  /**
   * A write of {@code PCollection<KV<String, byte[]>>} to a JetStream Key/Value bucket: configure it
   * with {@code withServers} and {@code withBucket}. See {@link WriteKeyValue}.
   */
  public static WriteKeyValue writeKeyValue() {
    return new AutoValue_NatsIO_WriteKeyValue.Builder().setMaxInFlight(DEFAULT_MAX_IN_FLIGHT).build();
  }

  /**
   * Reads a JetStream Key/Value bucket as a {@code PCollection<NatsKeyValue>}: by default the
   * latest revision of every key, then every change; with {@link #withHistory()} every revision the
   * bucket holds, then every change; with {@link #withStopAtCurrentRevision()} only up to the
   * bucket's revision when the read starts (bounded).
   *
   * <pre>{@code
   * PCollection<NatsKeyValue> config = pipeline.apply(
   *     NatsIO.readKeyValue()
   *         .withServers("nats://localhost:4222")
   *         .withBucket("config")
   *         .withKeys("app.>")                      // optional
   *         .withStopAtCurrentRevision());          // optional: a bounded snapshot
   * }</pre>
   *
   * <p>A bucket is the stream {@code KV_<bucket>}, and this read is {@link NatsIO#read()} of that
   * stream followed by a mapping step: positions (revisions), splitting, checkpoints, restore,
   * timestamps (each revision's creation time) and the watermark are exactly the stream read's,
   * and a restored job resumes at the next revision. Deletes and purges are entries with operation
   * {@code DELETE} or {@code PURGE} and an empty value. A bucket that does not exist fails the read
   * with an error naming it.
   *
   * <p>Latest values with a bucket history above 1: a revision is dropped when the stream holds a
   * newer revision of its key that the read will also deliver (below the snapshot's end when
   * bounded), found with one server lookup per revision read; with history 1 no lookup is needed.
   * So a bounded snapshot holds exactly each key's latest revision as of its end. See {@code
   * docs/key-value.md}.
   */
  @AutoValue
  public abstract static class ReadKeyValue extends PTransform<PBegin, PCollection<NatsKeyValue>> {
    abstract @Nullable ConnectionConfiguration getConnectionConfiguration();

    abstract @Nullable String getBucket();

    abstract List<String> getKeys();

    abstract boolean isHistory();

    abstract boolean isStopAtCurrentRevision();

    abstract Builder toBuilder();

    /** The servers to connect to: comma-separated URLs such as {@code nats://localhost:4222}. */
    public ReadKeyValue withServers(String servers) {
      ConnectionConfiguration current = getConnectionConfiguration();
      return withConnectionConfiguration(
          current == null ? ConnectionConfiguration.create(servers) : current.withServers(servers));
    }

    /** How to reach NATS, with authentication and TLS. See {@link ConnectionConfiguration}. */
    public ReadKeyValue withConnectionConfiguration(ConnectionConfiguration configuration) {
      return toBuilder().setConnectionConfiguration(requireNonNull(configuration, "configuration")).build();
    }

    /** The bucket to read. */
    public ReadKeyValue withBucket(String bucket) {
      return toBuilder().setBucket(requireNonNull(bucket, "bucket")).build();
    }

    /**
     * Reads only keys matching this filter ({@code *} one token, {@code >} the rest, as in NATS
     * subjects), e.g. {@code "app.>"}. Several filters are read as {@link
     * Read#withFilterSubjects} reads several subjects.
     */
    public ReadKeyValue withKeys(String... keyFilters) {
      return toBuilder().setKeys(List.copyOf(Arrays.asList(keyFilters))).build();
    }

    /** Reads every revision the bucket holds (up to its history per key), not only the latest of each key. */
    public ReadKeyValue withHistory() {
      return toBuilder().setHistory(true).build();
    }

    /**
     * Stops at the bucket's latest revision as of when the read starts: the read is bounded. Without
     * it the read continues with every later change.
     */
    public ReadKeyValue withStopAtCurrentRevision() {
      return toBuilder().setStopAtCurrentRevision(true).build();
    }

    @Override
    public PCollection<NatsKeyValue> expand(PBegin input) {
      String transform = "NatsIO.readKeyValue()";
      if (getConnectionConfiguration() == null) {
        throw new IllegalArgumentException(
            transform + " needs servers: call withServers(\"nats://host:4222\") or withConnectionConfiguration(...).");
      }
      KeyValueBuckets.validateBucket(transform, getBucket());
      String bucket = getBucket();
      String[] filters = new String[getKeys().size()];
      for (int i = 0; i < filters.length; i++) {
        KeyValueBuckets.validateKeyFilter(transform, getKeys().get(i));
        filters[i] = KeyValueBuckets.subjectOf(bucket, getKeys().get(i));
      }
      Read read = read()
          .withConnectionConfiguration(getConnectionConfiguration())
          .withStream(KeyValueBuckets.streamOf(bucket))
          .withFilterSubjects(filters);
      if (isStopAtCurrentRevision() && !isHistory()) {
        // A bounded snapshot: its end is fixed once, before the read, so the mapping step knows which
        // newer revisions the read will deliver (see KeyValueEntriesDoFn).
        PCollection<NatsSourceDescriptor> snapshot = input
            .apply("Impulse", Impulse.create())
            .apply("Find current revision of bucket " + bucket,
                ParDo.of(new KeyValueEntriesDoFn.SnapshotPoint(getConnectionConfiguration(), read.toDescriptor())));
        PCollectionView<NatsSourceDescriptor> end = snapshot.apply("Snapshot end", View.asSingleton());
        return snapshot
            .apply("Read bucket " + bucket, read.toReadSourceDescriptors().withBounded())
            .apply("Latest revisions",
                ParDo.of(new KeyValueEntriesDoFn(getConnectionConfiguration(), bucket, true, end)).withSideInputs(end))
            .setCoder(NatsKeyValueCoder.of());
      }
      if (isStopAtCurrentRevision()) {
        read = read.withStopAtEndOfStream();
      }
      return input
          .apply("Read bucket " + bucket, read)
          .apply(isHistory() ? "Revisions" : "Latest revisions",
              ParDo.of(new KeyValueEntriesDoFn(getConnectionConfiguration(), bucket, !isHistory(), null)))
          .setCoder(NatsKeyValueCoder.of());
    }

    @Override
    public void populateDisplayData(DisplayData.Builder builder) {
      super.populateDisplayData(builder);
      if (getConnectionConfiguration() != null) {
        getConnectionConfiguration().populateDisplayData(builder);
      }
      builder.addIfNotNull(DisplayData.item("bucket", getBucket()).withLabel("Key/Value bucket"));
      if (!getKeys().isEmpty()) {
        builder.add(DisplayData.item("keys", String.join(",", getKeys())));
      }
      builder.add(DisplayData.item("revisions", isHistory() ? "all" : "latest per key"));
      builder.add(DisplayData.item("stopAtCurrentRevision", isStopAtCurrentRevision()));
    }

    @AutoValue.Builder
    abstract static class Builder {
      abstract Builder setConnectionConfiguration(ConnectionConfiguration configuration);

      abstract Builder setBucket(String bucket);

      abstract Builder setKeys(List<String> keys);

      abstract Builder setHistory(boolean history);

      abstract Builder setStopAtCurrentRevision(boolean stopAtCurrentRevision);

      abstract ReadKeyValue build();
    }
  }

  /**
   * Writes {@code KV<key, value>} elements to a JetStream Key/Value bucket: a put per element, a
   * null value deleting the key. Outputs {@code KV<key, revision>} for every put and delete the
   * server stored.
   *
   * <pre>{@code
   * PCollection<KV<String, Long>> revisions = updates                 // PCollection<KV<String, byte[]>>
   *     .setCoder(KvCoder.of(StringUtf8Coder.of(), NullableCoder.of(ByteArrayCoder.of())))  // for null values
   *     .apply(NatsIO.writeKeyValue()
   *         .withServers("nats://localhost:4222")
   *         .withBucket("config")
   *         .withExpectedRevisionFn(kv -> expected.get(kv.getKey()))   // optional compare-and-set
   *         .withBadRecordErrorHandler(errorHandler));                  // optional
   * }</pre>
   *
   * <p>A put is a JetStream publish to {@code $KV.<bucket>.<key>}, a delete one with the header
   * {@code KV-Operation: DEL}, exactly as jnats's own {@code KeyValue} sends them, through {@link
   * NatsIO#write()}'s JetStream write: at most {@link #withMaxInFlight} unacknowledged per worker
   * thread, every acknowledgement awaited before a bundle commits, unknown outcomes retried.
   *
   * <p>Keys NATS refuses (anything but A-Z, a-z, 0-9, {@code - _ / = .}, a leading or trailing dot,
   * wildcards) are refused before they are published, with the key named. With {@link
   * #withExpectedRevisionFn} each put is a compare-and-set; a put that finds another revision, like
   * a refused key, goes to {@link #withBadRecordErrorHandler} or, without one, fails the bundle.
   */
  @AutoValue
  public abstract static class WriteKeyValue extends PTransform<PCollection<KV<String, byte[]>>, PCollection<KV<String, Long>>> {
    abstract @Nullable ConnectionConfiguration getConnectionConfiguration();

    abstract @Nullable String getBucket();

    abstract @Nullable SerializableFunction<KV<String, byte[]>, Long> getExpectedRevisionFn();

    abstract int getMaxInFlight();

    abstract @Nullable ErrorHandler<BadRecord, ?> getBadRecordErrorHandler();

    abstract Builder toBuilder();

    /** The servers to connect to: comma-separated URLs such as {@code nats://localhost:4222}. */
    public WriteKeyValue withServers(String servers) {
      ConnectionConfiguration current = getConnectionConfiguration();
      return withConnectionConfiguration(
          current == null ? ConnectionConfiguration.create(servers) : current.withServers(servers));
    }

    /** How to reach NATS, with authentication and TLS. See {@link ConnectionConfiguration}. */
    public WriteKeyValue withConnectionConfiguration(ConnectionConfiguration configuration) {
      return toBuilder().setConnectionConfiguration(requireNonNull(configuration, "configuration")).build();
    }

    /** The bucket to write to; it must exist (a put to a missing bucket is refused by the server). */
    public WriteKeyValue withBucket(String bucket) {
      return toBuilder().setBucket(requireNonNull(bucket, "bucket")).build();
    }

    /**
     * Makes each put a compare-and-set: it is stored only if the key's latest revision is {@code
     * expectedRevisionFn(element)}, 0 meaning the key has no revision at all (a deleted key has
     * one: its delete), null meaning no check for that element. A put that finds another revision
     * goes to {@link #withBadRecordErrorHandler}, or fails the bundle without one. A retried put
     * (a lost acknowledgement, a bundle the runner runs again) is recognised by the server as a
     * repeat within the bucket's duplicate window and not reported as a conflict.
     */
    public WriteKeyValue withExpectedRevisionFn(SerializableFunction<KV<String, byte[]>, Long> expectedRevisionFn) {
      return toBuilder().setExpectedRevisionFn(requireNonNull(expectedRevisionFn, "expectedRevisionFn")).build();
    }

    /** At most this many puts per DoFn instance await their acknowledgement (default 4,096). See {@link Write#withMaxInFlight}. */
    public WriteKeyValue withMaxInFlight(int maxInFlight) {
      return toBuilder().setMaxInFlight(maxInFlight).build();
    }

    /**
     * Sends refused elements (invalid keys, compare-and-set conflicts, a failing expected-revision
     * function, anything the server refuses) to {@code errorHandler} as {@link BadRecord}s, with
     * the key and the reason, instead of failing the pipeline.
     */
    public WriteKeyValue withBadRecordErrorHandler(ErrorHandler<BadRecord, ?> errorHandler) {
      return toBuilder().setBadRecordErrorHandler(requireNonNull(errorHandler, "errorHandler")).build();
    }

    @Override
    public PCollection<KV<String, Long>> expand(PCollection<KV<String, byte[]>> input) {
      String transform = "NatsIO.writeKeyValue()";
      if (getConnectionConfiguration() == null) {
        throw new IllegalArgumentException(
            transform + " needs servers: call withServers(\"nats://host:4222\") or withConnectionConfiguration(...).");
      }
      KeyValueBuckets.validateBucket(transform, getBucket());
      String bucket = getBucket();
      boolean routeBadRecords = getBadRecordErrorHandler() != null;
      PCollectionTuple puts = input.apply("Puts to bucket " + bucket,
          ParDo.of(new KeyValuePutsDoFn(bucket, getExpectedRevisionFn(), routeBadRecords))
              .withOutputTags(KeyValuePutsDoFn.PUTS, TupleTagList.of(BadRecordRouter.BAD_RECORD_TAG)));
      PCollection<BadRecord> refusedKeys =
          puts.get(BadRecordRouter.BAD_RECORD_TAG).setCoder(BadRecord.getCoder(input.getPipeline()));
      Write write = write()
          .withConnectionConfiguration(getConnectionConfiguration())
          .withJetStream()
          .withExpectedStream(KeyValueBuckets.streamOf(bucket))
          .withMaxInFlight(getMaxInFlight());
      if (routeBadRecords) {
        getBadRecordErrorHandler().addErrorCollection(refusedKeys);
        write = write.withBadRecordErrorHandler(getBadRecordErrorHandler());
      }
      return puts.get(KeyValuePutsDoFn.PUTS).setCoder(NatsMessageCoder.of())
          .apply("Write bucket " + bucket, write)
          .getPublishResults()
          .apply("Revisions", MapElements.into(TypeDescriptors.kvs(TypeDescriptors.strings(), TypeDescriptors.longs()))
              .via(new RevisionOf(bucket)))
          .setCoder(KvCoder.of(StringUtf8Coder.of(), VarLongCoder.of()));
    }

    @Override
    public void populateDisplayData(DisplayData.Builder builder) {
      super.populateDisplayData(builder);
      if (getConnectionConfiguration() != null) {
        getConnectionConfiguration().populateDisplayData(builder);
      }
      builder.addIfNotNull(DisplayData.item("bucket", getBucket()).withLabel("Key/Value bucket"));
      builder.add(DisplayData.item("compareAndSet", getExpectedRevisionFn() != null));
      builder.add(DisplayData.item("maxInFlight", getMaxInFlight()));
      builder.add(DisplayData.item("badRecordErrorHandler", getBadRecordErrorHandler() != null));
    }

    @AutoValue.Builder
    abstract static class Builder {
      abstract Builder setConnectionConfiguration(ConnectionConfiguration configuration);

      abstract Builder setBucket(String bucket);

      abstract Builder setExpectedRevisionFn(@Nullable SerializableFunction<KV<String, byte[]>, Long> expectedRevisionFn);

      abstract Builder setMaxInFlight(int maxInFlight);

      abstract Builder setBadRecordErrorHandler(@Nullable ErrorHandler<BadRecord, ?> badRecordErrorHandler);

      abstract WriteKeyValue build();
    }
  }

  /** A stored put's key and revision. */
  private static final class RevisionOf implements SerializableFunction<NatsPublishResult, KV<String, Long>> {
    private final String bucket;

    RevisionOf(String bucket) {
      this.bucket = bucket;
    }

    @Override
    public KV<String, Long> apply(NatsPublishResult result) {
      return KV.of(KeyValueBuckets.keyOf(bucket, result.getSubject()), result.getSequence());
    }
  }

  private static void validateLimits(@Nullable Long maxNumRecords, @Nullable Duration maxReadTime) {
    if (maxNumRecords != null && maxNumRecords < 1) {
      throw new IllegalArgumentException("NatsIO withMaxNumRecords(" + maxNumRecords + ") must be at least 1.");
    }
    if (maxReadTime != null && !maxReadTime.isLongerThan(Duration.ZERO)) {
      throw new IllegalArgumentException("NatsIO withMaxReadTime(" + maxReadTime + ") must be positive.");
    }
  }

  /** {@code duration}, refused when negative: a watermark ahead of the data would make it late. */
  private static Duration nonNegative(Duration duration, String method, String name) {
    requireNonNull(duration, name);
    if (duration.isShorterThan(Duration.ZERO)) {
      throw new IllegalArgumentException(
          method + "(" + duration + "): " + name + " must not be negative; a watermark ahead of the messages' timestamps would "
              + "make them late. Use Duration.ZERO for none.");
    }
    return duration;
  }

  private static void validateRate(@Nullable Double maxMessagesPerSecond) {
    if (maxMessagesPerSecond != null && !(maxMessagesPerSecond > 0 && maxMessagesPerSecond <= 1e9)) {
      throw new IllegalArgumentException(
          "NatsIO withMaxMessagesPerSecond(" + maxMessagesPerSecond + ") must be positive (and at most a billion).");
    }
  }

  private static void validateTuning(long splitSize, int batchSize) {
    if (splitSize < 1) {
      throw new IllegalArgumentException("NatsIO withSplitSize(" + splitSize + ") must be at least 1.");
    }
    if (batchSize < 1) {
      throw new IllegalArgumentException("NatsIO withBatchSize(" + batchSize + ") must be at least 1.");
    }
  }
}
