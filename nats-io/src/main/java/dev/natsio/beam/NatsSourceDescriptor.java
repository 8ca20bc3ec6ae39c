package dev.natsio.beam;

import com.google.auto.value.AutoValue;
import java.io.Serializable;
import java.util.Arrays;
import java.util.List;
import org.apache.beam.sdk.schemas.AutoValueSchema;
import org.apache.beam.sdk.schemas.annotations.DefaultSchema;
import org.checkerframework.checker.nullness.qual.Nullable;
import org.joda.time.Instant;

/**
 * What one JetStream read covers: a stream, optional filter subjects, where to start and where
 * to stop. {@link NatsIO#readSourceDescriptors()} reads a {@code PCollection} of these, so one
 * pipeline can read many streams or subject partitions discovered at run time; {@link
 * NatsIO#read()} builds exactly one.
 *
 * <p>Start: {@link #withStartSequence}, {@link #withStartTime}, or by default the stream's first
 * message. Stop (makes the read bounded): {@link #withStopSequence} (exclusive), {@link
 * #withStopTime} (exclusive), or {@link #withStopAtEndOfStream} (the last message when the read
 * starts). It has a Beam schema, so descriptors can come from rows.
 */
@AutoValue
@DefaultSchema(AutoValueSchema.class)
public abstract class NatsSourceDescriptor implements Serializable {
  private static final long serialVersionUID = 1L;

  /** The stream to read. */
  public abstract String getStream();

  /** The subjects to read (wildcards allowed); empty for all of the stream's. */
  public abstract List<String> getFilterSubjects();

  /** The first sequence to read, or null. */
  public abstract @Nullable Long getStartSequence();

  /** Reads from the first message stored at or after this time, or null. */
  public abstract @Nullable Instant getStartTime();

  /** The sequence to stop before (exclusive), or null. */
  public abstract @Nullable Long getStopSequence();

  /** Stops before the first message stored at or after this time, or null. */
  public abstract @Nullable Instant getStopTime();

  /** True when the read stops after the stream's last message as of its start. */
  public abstract boolean getStopAtEndOfStream();

  /** Reads {@code stream} from its first message, unbounded. */
  public static NatsSourceDescriptor of(String stream) {
    return builder().setStream(NatsNames.checkStream(stream, "NatsSourceDescriptor.of")).setFilterSubjects(List.of()).setStopAtEndOfStream(false).build();
  }

  /** A builder with nothing set; {@link #of(String)} is the shorter way. */
  public static Builder builder() {
    return new AutoValue_NatsSourceDescriptor.Builder();
  }

  abstract Builder toBuilder();

  /** Reads only these subjects of the stream (wildcards allowed). */
  public NatsSourceDescriptor withFilterSubjects(String... filterSubjects) {
    return toBuilder().setFilterSubjects(List.copyOf(Arrays.asList(filterSubjects))).build();
  }

  /** Starts at this sequence (or the first one after it that exists). */
  public NatsSourceDescriptor withStartSequence(long startSequence) {
    return toBuilder().setStartSequence(startSequence).build();
  }

  /** Starts at the first message stored at or after this time. */
  public NatsSourceDescriptor withStartTime(Instant startTime) {
    return toBuilder().setStartTime(startTime).build();
  }

  /** Stops before {@code stopSequence} (exclusive, like Beam's {@code OffsetRange}). */
  public NatsSourceDescriptor withStopSequence(long stopSequence) {
    return toBuilder().setStopSequence(stopSequence).build();
  }

  /** Stops before the first message stored at or after {@code stopTime}. */
  public NatsSourceDescriptor withStopTime(Instant stopTime) {
    return toBuilder().setStopTime(stopTime).build();
  }

  /** Stops after the stream's last message as of when the read starts. */
  public NatsSourceDescriptor withStopAtEndOfStream() {
    return toBuilder().setStopAtEndOfStream(true).build();
  }

  /** True when the descriptor has a stop, so its read ends. */
  public boolean isBounded() {
    return getStopSequence() != null || getStopTime() != null || getStopAtEndOfStream();
  }

  /**
   * Refuses positions that contradict each other or cannot exist, with the same messages for a
   * {@link NatsIO#read()} (checked when it expands) and a descriptor (checked when it is built), so
   * neither is ever resolved by precedence. {@code owner} names what was configured.
   */
  static void validatePositions(
      String owner, @Nullable String stream, List<String> filterSubjects, @Nullable Long startSequence,
      @Nullable Instant startTime, @Nullable Long stopSequence, @Nullable Instant stopTime, boolean stopAtEndOfStream) {
    if (stream == null || stream.isBlank()) {
      throw new IllegalArgumentException(owner + " needs a JetStream stream: give its name (withStream(\"name\")).");
    }
    if (startSequence != null && startTime != null) {
      throw new IllegalArgumentException(owner + " has both withStartSequence and withStartTime: keep one of them.");
    }
    if (startSequence != null && startSequence < 1) {
      throw new IllegalArgumentException(owner + " withStartSequence(" + startSequence + "): stream sequences start at 1.");
    }
    int stops = (stopSequence != null ? 1 : 0) + (stopTime != null ? 1 : 0) + (stopAtEndOfStream ? 1 : 0);
    if (stops > 1) {
      throw new IllegalArgumentException(
          owner + " has more than one stop (withStopSequence, withStopTime, withStopAtEndOfStream): keep one of them.");
    }
    long start = startSequence == null ? 1 : startSequence;
    if (stopSequence != null && stopSequence <= start) {
      throw new IllegalArgumentException(
          owner + " withStopSequence(" + stopSequence + ") is not after the start sequence " + start
              + "; the stop is exclusive, so it must be greater than the start.");
    }
    if (stopTime != null && startTime != null && !stopTime.isAfter(startTime)) {
      throw new IllegalArgumentException(owner + " withStopTime(" + stopTime + ") is not after withStartTime(" + startTime + ").");
    }
    for (String filter : filterSubjects) {
      if (filter == null || filter.isBlank()) {
        throw new IllegalArgumentException(owner + " withFilterSubjects has an empty subject.");
      }
    }
  }

  /** Builds a descriptor; used by the schema, and by users who prefer setters. */
  @AutoValue.Builder
  public abstract static class Builder {
    /** See {@link NatsSourceDescriptor#getStream()}. */
    public abstract Builder setStream(String stream);

    /** See {@link NatsSourceDescriptor#getFilterSubjects()}. */
    public abstract Builder setFilterSubjects(List<String> filterSubjects);

    /** See {@link NatsSourceDescriptor#getStartSequence()}. */
    public abstract Builder setStartSequence(@Nullable Long startSequence);

    /** See {@link NatsSourceDescriptor#getStartTime()}. */
    public abstract Builder setStartTime(@Nullable Instant startTime);

    /** See {@link NatsSourceDescriptor#getStopSequence()}. */
    public abstract Builder setStopSequence(@Nullable Long stopSequence);

    /** See {@link NatsSourceDescriptor#getStopTime()}. */
    public abstract Builder setStopTime(@Nullable Instant stopTime);

    /** See {@link NatsSourceDescriptor#getStopAtEndOfStream()}. */
    public abstract Builder setStopAtEndOfStream(boolean stopAtEndOfStream);

    abstract NatsSourceDescriptor autoBuild();

    /**
     * The descriptor; refuses contradicting or impossible positions (two starts, two stops, a stop
     * not after the start) with the messages {@link NatsIO#read()} gives for the same settings.
     */
    public NatsSourceDescriptor build() {
      NatsSourceDescriptor descriptor = autoBuild();
      validatePositions(
          "NatsSourceDescriptor", descriptor.getStream(), descriptor.getFilterSubjects(), descriptor.getStartSequence(),
          descriptor.getStartTime(), descriptor.getStopSequence(), descriptor.getStopTime(), descriptor.getStopAtEndOfStream());
      return descriptor;
    }
  }
}
