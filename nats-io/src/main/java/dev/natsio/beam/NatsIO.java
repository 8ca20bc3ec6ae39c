package dev.natsio.beam;

import static java.util.Objects.requireNonNull;

import com.google.auto.value.AutoValue;
import io.nats.client.Options;
import java.io.Serializable;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.Impulse;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.SerializableFunction;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.transforms.errorhandling.BadRecord;
import org.apache.beam.sdk.transforms.errorhandling.BadRecordRouter;
import org.apache.beam.sdk.transforms.errorhandling.ErrorHandler;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.PInput;
import org.apache.beam.sdk.values.POutput;
import org.apache.beam.sdk.values.PValue;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;
import org.apache.beam.sdk.values.TypeDescriptor;
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
 * Write#withMaxInFlight} (default 4,096) awaiting acknowledgement per worker thread, and every
 * acknowledgement is awaited before a bundle completes; timed-out publishes are retried with the
 * same message id. With {@link Write#withMessageIdFn} the stream stores each message once even
 * when the runner retries a bundle, as long as the retry comes within the stream's duplicate window
 * (2 minutes by default). A Core write only flushes each bundle to the server: Core NATS confirms
 * no delivery, and its publish results are empty. Messages NATS refuses fail the pipeline with a
 * {@link NatsIOException}, or go to {@link Write#withBadRecordErrorHandler}.
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
      return toBuilder().setExpectedStream(requireNonNull(stream, "stream")).build();
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

  private static void validateTuning(long splitSize, int batchSize) {
    if (splitSize < 1) {
      throw new IllegalArgumentException("NatsIO withSplitSize(" + splitSize + ") must be at least 1.");
    }
    if (batchSize < 1) {
      throw new IllegalArgumentException("NatsIO withBatchSize(" + batchSize + ") must be at least 1.");
    }
  }
}
