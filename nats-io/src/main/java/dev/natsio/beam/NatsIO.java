package dev.natsio.beam;

import static java.util.Objects.requireNonNull;

import com.google.auto.value.AutoValue;
import io.nats.client.Options;
import java.io.Serializable;
import java.util.Arrays;
import java.util.List;
import org.apache.beam.sdk.transforms.Impulse;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Duration;
import org.joda.time.Instant;

/**
 * Apache Beam I/O for NATS: read JetStream streams in a pipeline.
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
 * <p>The read is a splittable DoFn whose restriction is a range of stream sequence numbers. The
 * runner's checkpoint holds the position, not the server: nothing is acknowledged or deleted, and a
 * restore replays from exactly where the checkpoint was taken, on every runner. Without a stop the
 * read is unbounded and follows the stream live; with one it is bounded and split for parallel
 * reading. Element timestamps are the server's publish time by default; see {@link
 * Read#withProcessingTime()} and {@link Read#withTimestampFn}. The watermark follows them and,
 * once the read has caught up, advances to now minus {@link Read#withIdleWatermarkDelay} so
 * event-time windows close on a quiet stream.
 *
 * <p>To read many streams or subject partitions found at run time, apply {@link
 * #readSourceDescriptors()} to a {@code PCollection<NatsSourceDescriptor>}.
 *
 * <h2>Connections</h2>
 *
 * <p>{@code withServers(...)} is the short form of {@link ConnectionConfiguration}. Each worker
 * JVM shares one connection per configuration across all bundles and DoFn instances. Credentials
 * in a server URL ({@code nats://user:pass@host}) are accepted, and kept out of display data, logs
 * and error messages.
 */
public final class NatsIO {
  private NatsIO() {}

  /** Defaults a benchmark or a user would tune. */
  static final long DEFAULT_SPLIT_SIZE = 100_000;
  static final int DEFAULT_BATCH_SIZE = 1_000;
  static final Duration DEFAULT_IDLE_WATERMARK_DELAY = Duration.standardSeconds(2);

  /** A JetStream read: configure it with {@code withServers} and {@code withStream}. */
  public static Read read() {
    return new AutoValue_NatsIO_Read.Builder()
        .setFilterSubjects(List.of())
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

  /** Where element timestamps come from. */
  enum TimestampPolicy {
    PUBLISH_TIME,
    PROCESSING_TIME,
    TIMESTAMP_FN
  }

  // ---- ConnectionConfiguration -----------------------------------------------------------------

  /**
   * How to reach NATS: servers and connection settings, shared by reads and writes.
   * Serializable, and safe to display: {@link #toString()} and display data never show secrets.
   */
  @AutoValue
  public abstract static class ConnectionConfiguration implements Serializable {
    private static final long serialVersionUID = 1L;

    /** Comma-separated server URLs, e.g. {@code nats://a:4222,nats://b:4222}. */
    public abstract String getServers();

    public abstract @Nullable String getUsername();

    abstract @Nullable String getPassword();

    abstract @Nullable String getToken();

    public abstract @Nullable String getConnectionName();

    public abstract Duration getConnectTimeout();

    public abstract Duration getReconnectWait();

    public abstract int getMaxReconnects();

    abstract Builder toBuilder();

    /** Connects to {@code servers} (comma-separated URLs), reconnecting forever on loss. */
    public static ConnectionConfiguration create(String servers) {
      requireNonNull(servers, "servers");
      if (NatsUrls.split(servers).isEmpty()) {
        throw new IllegalArgumentException("NatsIO needs at least one server URL, e.g. \"nats://localhost:4222\"; got \"" + servers + "\"");
      }
      return new AutoValue_NatsIO_ConnectionConfiguration.Builder()
          .setServers(servers)
          .setConnectTimeout(Duration.standardSeconds(5))
          .setReconnectWait(Duration.millis(250))
          .setMaxReconnects(-1)
          .build();
    }

    public ConnectionConfiguration withServers(String servers) {
      return create(servers).toBuilder()
          .setUsername(getUsername()).setPassword(getPassword()).setToken(getToken())
          .setConnectionName(getConnectionName()).setConnectTimeout(getConnectTimeout())
          .setReconnectWait(getReconnectWait()).setMaxReconnects(getMaxReconnects())
          .build();
    }

    public ConnectionConfiguration withUsernamePassword(String username, String password) {
      return toBuilder().setUsername(requireNonNull(username)).setPassword(requireNonNull(password)).build();
    }

    public ConnectionConfiguration withToken(String token) {
      return toBuilder().setToken(requireNonNull(token)).build();
    }

    /** The name the server shows for this client's connections. */
    public ConnectionConfiguration withConnectionName(String connectionName) {
      return toBuilder().setConnectionName(connectionName).build();
    }

    /** How long the first connect may take before the pipeline fails with a clear error. */
    public ConnectionConfiguration withConnectTimeout(Duration connectTimeout) {
      return toBuilder().setConnectTimeout(connectTimeout).build();
    }

    public ConnectionConfiguration withReconnectWait(Duration reconnectWait) {
      return toBuilder().setReconnectWait(reconnectWait).build();
    }

    /** Reconnect attempts after a connection is lost; -1 (the default) retries forever. */
    public ConnectionConfiguration withMaxReconnects(int maxReconnects) {
      return toBuilder().setMaxReconnects(maxReconnects).build();
    }

    /** The servers with any embedded credentials removed. */
    String displayServers() {
      return NatsUrls.redact(getServers());
    }

    /** jnats options for this configuration; the URLs handed over carry no credentials. */
    Options toOptions() {
      Options.Builder options =
          new Options.Builder()
              .servers(NatsUrls.withoutCredentials(getServers()).toArray(new String[0]))
              .connectionTimeout(java.time.Duration.ofMillis(getConnectTimeout().getMillis()))
              .reconnectWait(java.time.Duration.ofMillis(getReconnectWait().getMillis()))
              .maxReconnects(getMaxReconnects());
      String urlUserInfo = NatsUrls.userInfo(getServers());
      if (getUsername() != null) {
        options.userInfo(getUsername().toCharArray(), getPassword() == null ? new char[0] : getPassword().toCharArray());
      } else if (urlUserInfo != null && urlUserInfo.contains(":")) {
        int colon = urlUserInfo.indexOf(':');
        options.userInfo(urlUserInfo.substring(0, colon).toCharArray(), urlUserInfo.substring(colon + 1).toCharArray());
      } else if (urlUserInfo != null) {
        options.token(urlUserInfo.toCharArray());
      }
      if (getToken() != null) {
        options.token(getToken().toCharArray());
      }
      if (getConnectionName() != null) {
        options.connectionName(getConnectionName());
      }
      return options.build();
    }

    void populateDisplayData(DisplayData.Builder builder) {
      builder.add(DisplayData.item("servers", displayServers()).withLabel("NATS servers"));
      builder.addIfNotNull(DisplayData.item("username", getUsername()).withLabel("NATS user"));
      builder.addIfNotNull(DisplayData.item("connectionName", getConnectionName()));
      if (getPassword() != null || getToken() != null || NatsUrls.userInfo(getServers()) != null) {
        builder.add(DisplayData.item("credentials", "(set, hidden)"));
      }
    }

    @Override
    public final String toString() {
      return "ConnectionConfiguration{servers=" + displayServers()
          + (getUsername() == null ? "" : ", username=" + getUsername())
          + (getPassword() == null && getToken() == null ? "" : ", credentials=(hidden)")
          + (getConnectionName() == null ? "" : ", connectionName=" + getConnectionName())
          + "}";
    }

    @AutoValue.Builder
    abstract static class Builder {
      abstract Builder setServers(String servers);

      abstract Builder setUsername(@Nullable String username);

      abstract Builder setPassword(@Nullable String password);

      abstract Builder setToken(@Nullable String token);

      abstract Builder setConnectionName(@Nullable String connectionName);

      abstract Builder setConnectTimeout(Duration connectTimeout);

      abstract Builder setReconnectWait(Duration reconnectWait);

      abstract Builder setMaxReconnects(int maxReconnects);

      abstract ConnectionConfiguration build();
    }
  }

  // ---- Read ------------------------------------------------------------------------------------

  /** A {@link PTransform} that reads one JetStream stream. See {@link NatsIO}. */
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

    abstract Builder toBuilder();

    /** The servers to connect to: comma-separated URLs such as {@code nats://localhost:4222}. */
    public Read withServers(String servers) {
      ConnectionConfiguration current = getConnectionConfiguration();
      return withConnectionConfiguration(
          current == null ? ConnectionConfiguration.create(servers) : current.withServers(servers));
    }

    public Read withConnectionConfiguration(ConnectionConfiguration configuration) {
      return toBuilder().setConnectionConfiguration(requireNonNull(configuration, "configuration")).build();
    }

    /** The JetStream stream to read. */
    public Read withStream(String stream) {
      return toBuilder().setStream(stream).build();
    }

    /** Reads only these subjects of the stream (wildcards allowed; several need nats-server 2.10+). */
    public Read withFilterSubjects(String... filterSubjects) {
      return toBuilder().setFilterSubjects(List.copyOf(Arrays.asList(filterSubjects))).build();
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
     * behind the largest timestamp seen: the watermark trails by that much.
     */
    public Read withTimestampFn(SerializableFunction<NatsMessage, Instant> timestampFn, Duration maxDelay) {
      return toBuilder()
          .setTimestampPolicy(TimestampPolicy.TIMESTAMP_FN)
          .setTimestampFn(requireNonNull(timestampFn, "timestampFn"))
          .setMaxDelay(requireNonNull(maxDelay, "maxDelay"))
          .build();
    }

    /**
     * How far behind now the watermark of a caught-up, publish-time read stays (default 2 s). It
     * covers clock skew between workers and servers: larger is safer, smaller closes windows sooner.
     */
    public Read withIdleWatermarkDelay(Duration idleWatermarkDelay) {
      return toBuilder().setIdleWatermarkDelay(requireNonNull(idleWatermarkDelay)).build();
    }

    /** A bounded range is split up front into pieces of this many sequences (default 100,000). */
    public Read withSplitSize(long splitSize) {
      return toBuilder().setSplitSize(splitSize).build();
    }

    /** How many messages each reader pulls ahead of processing (default 1,000). */
    public Read withBatchSize(int batchSize) {
      return toBuilder().setBatchSize(batchSize).build();
    }

    boolean isBounded() {
      return getStopSequence() != null || getStopTime() != null || getStopAtEndOfStream();
    }

    @Override
    public PCollection<NatsMessage> expand(PBegin input) {
      validate();
      NatsSourceDescriptor descriptor = toDescriptor();
      return input
          .apply("Impulse", Impulse.create())
          .apply("Describe stream " + descriptor.getStream(),
              MapElements.into(TypeDescriptor.of(NatsSourceDescriptor.class)).via(new ConstantDescriptor(descriptor)))
          .apply("Read stream " + descriptor.getStream(), toReadSourceDescriptors());
    }

    private void validate() {
      if (getConnectionConfiguration() == null) {
        throw new IllegalArgumentException(
            "NatsIO.read() needs servers: call withServers(\"nats://host:4222\") or withConnectionConfiguration(...).");
      }
      if (getStream() == null || getStream().isBlank()) {
        throw new IllegalArgumentException("NatsIO.read() needs a JetStream stream: call withStream(\"name\").");
      }
      if (getStartSequence() != null && getStartTime() != null) {
        throw new IllegalArgumentException(
            "NatsIO.read() has both withStartSequence and withStartTime: keep one of them.");
      }
      if (getStartSequence() != null && getStartSequence() < 1) {
        throw new IllegalArgumentException(
            "NatsIO.read() withStartSequence(" + getStartSequence() + "): stream sequences start at 1.");
      }
      int stops = (getStopSequence() != null ? 1 : 0) + (getStopTime() != null ? 1 : 0) + (getStopAtEndOfStream() ? 1 : 0);
      if (stops > 1) {
        throw new IllegalArgumentException(
            "NatsIO.read() has more than one stop (withStopSequence, withStopTime, withStopAtEndOfStream): keep one of them.");
      }
      if (getStopSequence() != null && getStopSequence() <= (getStartSequence() == null ? 1 : getStartSequence())) {
        throw new IllegalArgumentException(
            "NatsIO.read() withStopSequence(" + getStopSequence() + ") is not after the start sequence "
                + (getStartSequence() == null ? 1 : getStartSequence())
                + "; the stop is exclusive, so it must be greater than the start.");
      }
      if (getStopTime() != null && getStartTime() != null && !getStopTime().isAfter(getStartTime())) {
        throw new IllegalArgumentException(
            "NatsIO.read() withStopTime(" + getStopTime() + ") is not after withStartTime(" + getStartTime() + ").");
      }
      for (String filter : getFilterSubjects()) {
        if (filter == null || filter.isBlank()) {
          throw new IllegalArgumentException("NatsIO.read() withFilterSubjects has an empty subject.");
        }
      }
      validateTuning(getSplitSize(), getBatchSize());
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
          .build();
    }

    @Override
    public void populateDisplayData(DisplayData.Builder builder) {
      super.populateDisplayData(builder);
      if (getConnectionConfiguration() != null) {
        getConnectionConfiguration().populateDisplayData(builder);
      }
      builder.addIfNotNull(DisplayData.item("stream", getStream()).withLabel("JetStream stream"));
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

      abstract Read build();
    }
  }

  /** Maps the impulse to the read's single descriptor. */
  private static final class ConstantDescriptor implements SerializableFunction<byte[], NatsSourceDescriptor> {
    private final NatsSourceDescriptor descriptor;

    ConstantDescriptor(NatsSourceDescriptor descriptor) {
      this.descriptor = descriptor;
    }

    @Override
    public NatsSourceDescriptor apply(byte[] impulse) {
      return descriptor;
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
    abstract @Nullable ConnectionConfiguration getConnectionConfiguration();

    abstract TimestampPolicy getTimestampPolicy();

    abstract @Nullable SerializableFunction<NatsMessage, Instant> getTimestampFn();

    abstract Duration getMaxDelay();

    abstract Duration getIdleWatermarkDelay();

    abstract long getSplitSize();

    abstract int getBatchSize();

    abstract boolean isBounded();

    abstract Builder toBuilder();

    public ReadSourceDescriptors withServers(String servers) {
      ConnectionConfiguration current = getConnectionConfiguration();
      return withConnectionConfiguration(
          current == null ? ConnectionConfiguration.create(servers) : current.withServers(servers));
    }

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
          .setMaxDelay(requireNonNull(maxDelay, "maxDelay"))
          .build();
    }

    /** See {@link Read#withIdleWatermarkDelay}. */
    public ReadSourceDescriptors withIdleWatermarkDelay(Duration idleWatermarkDelay) {
      return toBuilder().setIdleWatermarkDelay(requireNonNull(idleWatermarkDelay)).build();
    }

    /** See {@link Read#withSplitSize}. */
    public ReadSourceDescriptors withSplitSize(long splitSize) {
      return toBuilder().setSplitSize(splitSize).build();
    }

    /** See {@link Read#withBatchSize}. */
    public ReadSourceDescriptors withBatchSize(int batchSize) {
      return toBuilder().setBatchSize(batchSize).build();
    }

    @Override
    public PCollection<NatsMessage> expand(PCollection<NatsSourceDescriptor> input) {
      if (getConnectionConfiguration() == null) {
        throw new IllegalArgumentException(
            "NatsIO.readSourceDescriptors() needs servers: call withServers(\"nats://host:4222\") or withConnectionConfiguration(...).");
      }
      validateTuning(getSplitSize(), getBatchSize());
      return input.apply(ParDo.of(ReadFromJetStreamDoFn.create(this))).setCoder(NatsMessageCoder.of());
    }

    @Override
    public void populateDisplayData(DisplayData.Builder builder) {
      super.populateDisplayData(builder);
      if (getConnectionConfiguration() != null) {
        getConnectionConfiguration().populateDisplayData(builder);
      }
      builder.add(DisplayData.item("timestampPolicy", getTimestampPolicy().name()));
      builder.add(DisplayData.item("bounded", isBounded()));
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

      abstract ReadSourceDescriptors build();
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
