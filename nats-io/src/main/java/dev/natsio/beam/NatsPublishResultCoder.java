package dev.natsio.beam;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import org.apache.beam.sdk.coders.AtomicCoder;
import org.apache.beam.sdk.coders.BooleanCoder;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.NullableCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.coders.VarLongCoder;

/**
 * The default coder of {@link NatsPublishResult}: subject, stream, sequence, duplicate flag and
 * nullable message id, each with Beam's deterministic standard coders, so equal results encode to
 * equal bytes.
 */
public final class NatsPublishResultCoder extends AtomicCoder<NatsPublishResult> {
  private static final NatsPublishResultCoder INSTANCE = new NatsPublishResultCoder();
  private static final Coder<String> STRING = StringUtf8Coder.of();
  private static final Coder<String> NULLABLE_STRING = NullableCoder.of(StringUtf8Coder.of());

  private NatsPublishResultCoder() {}

  /** The coder; it has no state, so every call may return the same instance. */
  public static NatsPublishResultCoder of() {
    return INSTANCE;
  }

  @Override
  public void encode(NatsPublishResult result, OutputStream out) throws IOException {
    STRING.encode(result.getSubject(), out);
    STRING.encode(result.getStream(), out);
    VarLongCoder.of().encode(result.getSequence(), out);
    BooleanCoder.of().encode(result.isDuplicate(), out);
    NULLABLE_STRING.encode(result.getMessageId(), out);
  }

  @Override
  public NatsPublishResult decode(InputStream in) throws IOException {
    String subject = STRING.decode(in);
    String stream = STRING.decode(in);
    long sequence = VarLongCoder.of().decode(in);
    boolean duplicate = BooleanCoder.of().decode(in);
    String messageId = NULLABLE_STRING.decode(in);
    return NatsPublishResult.create(subject, stream, sequence, duplicate, messageId);
  }

  @Override
  public void verifyDeterministic() {}

  @Override
  public boolean consistentWithEquals() {
    return true;
  }
}
