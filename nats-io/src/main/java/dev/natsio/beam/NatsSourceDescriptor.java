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

  public abstract String getStream();

  public abstract List<String> getFilterSubjects();

  public abstract @Nullable Long getStartSequence();

  public abstract @Nullable Instant getStartTime();

  public abstract @Nullable Long getStopSequence();

  public abstract @Nullable Instant getStopTime();

  public abstract boolean getStopAtEndOfStream();

  /** Reads {@code stream} from its first message, unbounded. */
  public static NatsSourceDescriptor of(String stream) {
    return builder().setStream(NatsNames.checkStream(stream, "NatsSourceDescriptor.of")).setFilterSubjects(List.of()).setStopAtEndOfStream(false).build();
  }

  public static Builder builder() {
    return new AutoValue_NatsSourceDescriptor.Builder();
  }

  abstract Builder toBuilder();

  public NatsSourceDescriptor withFilterSubjects(String... filterSubjects) {
    return toBuilder().setFilterSubjects(List.copyOf(Arrays.asList(filterSubjects))).build();
  }

  public NatsSourceDescriptor withStartSequence(long startSequence) {
    return toBuilder().setStartSequence(startSequence).build();
  }

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

  /** Builds a descriptor; used by the schema, and by users who prefer setters. */
  @AutoValue.Builder
  public abstract static class Builder {
    public abstract Builder setStream(String stream);

    public abstract Builder setFilterSubjects(List<String> filterSubjects);

    public abstract Builder setStartSequence(@Nullable Long startSequence);

    public abstract Builder setStartTime(@Nullable Instant startTime);

    public abstract Builder setStopSequence(@Nullable Long stopSequence);

    public abstract Builder setStopTime(@Nullable Instant stopTime);

    public abstract Builder setStopAtEndOfStream(boolean stopAtEndOfStream);

    public abstract NatsSourceDescriptor build();
  }
}
