package dev.natsio.beam;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.junit.Assert.assertThrows;

import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.transforms.Create;
import org.junit.Test;

/** What NatsIO.write() refuses when it expands. No server needed. */
public class NatsIOWriteValidationTest {
  private static String expansionError(NatsIO.Write write) {
    Pipeline pipeline = Pipeline.create(PipelineOptionsFactory.create());
    return assertThrows(
            IllegalArgumentException.class,
            () -> pipeline.apply(Create.of(NatsMessage.create("a", new byte[] {1})).withCoder(NatsMessageCoder.of())).apply(write))
        .getMessage();
  }

  @Test
  public void connectionWithTwoKindsOfAuthenticationIsRefusedAsForTheRead() {
    NatsIO.ConnectionConfiguration both =
        NatsIO.ConnectionConfiguration.create("nats://127.0.0.1:4222").withToken("t").withUsernamePassword("u", "p");
    assertThat(expansionError(NatsIO.write().withConnectionConfiguration(both)), containsString("more than one kind of authentication"));
  }

  @Test
  public void connectionWithBothATrustStoreAndACaCertificateIsRefused() {
    NatsIO.ConnectionConfiguration both =
        NatsIO.ConnectionConfiguration.create("nats://127.0.0.1:4222").withTrustStore("/t.jks", "pw").withCaCertificate("/ca.pem");
    assertThat(expansionError(NatsIO.write().withConnectionConfiguration(both)), containsString("both withTrustStore and withCaCertificate"));
  }
}
