package dev.natsio.integration;

import static dev.natsio.beam.testing.JetStreamTestData.createStream;
import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.contains;
import static org.hamcrest.Matchers.emptyString;
import static org.hamcrest.Matchers.equalTo;

import dev.natsio.beam.schematransforms.NatsReadSchemaTransformProvider;
import dev.natsio.beam.schematransforms.NatsWriteSchemaTransformProvider;
import dev.natsio.beam.testing.NatsTestServer;
import java.io.File;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.beam.model.expansion.v1.ExpansionApi;
import org.apache.beam.model.expansion.v1.ExpansionServiceGrpc;
import org.apache.beam.model.pipeline.v1.ExternalTransforms.SchemaTransformPayload;
import org.apache.beam.model.pipeline.v1.RunnerApi;
import org.apache.beam.model.pipeline.v1.SchemaApi;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.coders.RowCoder;
import org.apache.beam.sdk.schemas.Schema;
import org.apache.beam.sdk.schemas.SchemaTranslation;
import org.apache.beam.sdk.schemas.transforms.SchemaTransformProvider;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.util.CoderUtils;
import org.apache.beam.sdk.util.construction.SdkComponents;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.Row;
import org.apache.beam.vendor.grpc.v1p69p0.com.google.protobuf.ByteString;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.ManagedChannel;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.ManagedChannelBuilder;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.ClassRule;
import org.junit.Test;

/**
 * nats-io's expansion-service jar, started as its own process ({@code java -jar JAR PORT}) the way
 * Beam YAML and Python start it, answers expansion requests for both NATS schema transforms with the
 * expected outputs. Driven from a Java gRPC client: Python is not available on these machines.
 */
public class ExpansionServiceJarTest {
  @ClassRule public static final NatsTestServer SERVER = NatsTestServer.jetStream();

  private static final String SCHEMA_TRANSFORM_URN = "beam:expansion:payload:schematransform:v1";

  private static Process service;
  private static ManagedChannel channel;
  private static ExpansionServiceGrpc.ExpansionServiceBlockingStub stub;

  @BeforeClass
  public static void startService() throws Exception {
    String jar = System.getProperty("natsio.expansionServiceJar");
    assertThat("the expansion-service jar " + jar + " exists (built by nats-io's package phase)",
        jar != null && new File(jar).isFile(), equalTo(true));
    int port;
    try (ServerSocket socket = new ServerSocket(0)) {
      port = socket.getLocalPort();
    }
    Path log = Files.createTempFile("natsio-expansion-service", ".log");
    service = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-jar", jar,
        String.valueOf(port)).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    while (true) {
      try (Socket probe = new Socket("127.0.0.1", port)) {
        break;
      } catch (java.io.IOException notYet) {
        if (!service.isAlive() || System.nanoTime() > deadline) {
          throw new AssertionError("The expansion service did not start: " + Files.readString(log));
        }
        Thread.sleep(200); // polling for the port to open; the loop's condition is the check
      }
    }
    channel = ManagedChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
    stub = ExpansionServiceGrpc.newBlockingStub(channel);
    createStream(SERVER.sharedConnection(), "EXPANSION", "expansion.>");
  }

  @AfterClass
  public static void stopService() throws Exception {
    if (channel != null) {
      channel.shutdownNow();
    }
    if (service != null) {
      service.destroy();
      if (!service.waitFor(10, TimeUnit.SECONDS)) {
        service.destroyForcibly().waitFor();
      }
    }
  }

  private static RunnerApi.PTransform schemaTransform(SchemaTransformProvider provider, Row configuration) throws Exception {
    SchemaTransformPayload payload = SchemaTransformPayload.newBuilder()
        .setIdentifier(provider.identifier())
        .setConfigurationSchema(SchemaTranslation.schemaToProto(provider.configurationSchema(), true))
        .setConfigurationRow(ByteString.copyFrom(
            CoderUtils.encodeToByteArray(RowCoder.of(provider.configurationSchema()), configuration)))
        .build();
    return RunnerApi.PTransform.newBuilder()
        .setUniqueName("nats")
        .setSpec(RunnerApi.FunctionSpec.newBuilder().setUrn(SCHEMA_TRANSFORM_URN).setPayload(payload.toByteString()))
        .build();
  }

  /** The field names of the rows of output {@code name} of an expanded transform. */
  private static List<String> outputFields(ExpansionApi.ExpansionResponse response, String name) {
    RunnerApi.Components components = response.getComponents();
    String pcollection = response.getTransform().getOutputsOrThrow(name);
    RunnerApi.Coder coder = components.getCodersOrThrow(components.getPcollectionsOrThrow(pcollection).getCoderId());
    assertThat(coder.getSpec().getUrn(), equalTo("beam:coder:row:v1"));
    try {
      return SchemaTranslation.schemaFromProto(SchemaApi.Schema.parseFrom(coder.getSpec().getPayload())).getFieldNames();
    } catch (Exception e) {
      throw new AssertionError("output " + name + " has no readable row schema", e);
    }
  }

  @Test
  public void theReadExpandsToRowsOfTheConfiguredSchemaAndAnErrorsOutput() throws Exception {
    NatsReadSchemaTransformProvider provider = new NatsReadSchemaTransformProvider();
    Schema configuration = provider.configurationSchema();
    Row config = Row.withSchema(configuration)
        .withFieldValue("servers", SERVER.url())
        .withFieldValue("stream", "EXPANSION")
        .withFieldValue("format", "json")
        .withFieldValue("schema", "{\"type\": \"object\", \"properties\": {\"id\": {\"type\": \"integer\"},"
            + " \"name\": {\"type\": \"string\"}}}")
        .withFieldValue("error_handling",
            Row.withSchema(configuration.getField("error_handling").getType().getRowSchema()).addValue("errors").build())
        .build();

    ExpansionApi.ExpansionResponse response = stub.expand(ExpansionApi.ExpansionRequest.newBuilder()
        .setNamespace("read").setTransform(schemaTransform(provider, config)).build());

    assertThat(response.getError(), emptyString());
    assertThat(response.getTransform().getOutputsMap().keySet(), org.hamcrest.Matchers.containsInAnyOrder("output", "errors"));
    assertThat(outputFields(response, "output"), org.hamcrest.Matchers.containsInAnyOrder("id", "name"));
    assertThat(outputFields(response, "errors"), contains("failed_row", "error_message"));
  }

  @Test
  public void theWriteExpandsWithAnErrorsOutput() throws Exception {
    NatsWriteSchemaTransformProvider provider = new NatsWriteSchemaTransformProvider();
    Schema configuration = provider.configurationSchema();
    Row config = Row.withSchema(configuration)
        .withFieldValue("servers", SERVER.url())
        .withFieldValue("subject", "expansion.out")
        .withFieldValue("jet_stream", true)
        .withFieldValue("message_id_field", "id")
        .withFieldValue("error_handling",
            Row.withSchema(configuration.getField("error_handling").getType().getRowSchema()).addValue("errors").build())
        .build();
    Schema rows = Schema.builder().addInt64Field("id").addStringField("name").build();
    Pipeline pipeline = Pipeline.create();
    PCollection<Row> input = pipeline.apply(Create.of(Row.withSchema(rows).addValues(1L, "a").build()).withRowSchema(rows));
    SdkComponents components = SdkComponents.create(pipeline.getOptions());
    String inputId = components.registerPCollection(input);

    ExpansionApi.ExpansionResponse response = stub.expand(ExpansionApi.ExpansionRequest.newBuilder()
        .setNamespace("write")
        .setComponents(components.toComponents())
        .setTransform(schemaTransform(provider, config).toBuilder().putAllInputs(Map.of("input", inputId)))
        .build());

    assertThat(response.getError(), emptyString());
    assertThat(response.getTransform().getOutputsMap().keySet(), contains("errors"));
    assertThat(outputFields(response, "errors"), contains("failed_row", "error_message"));
  }
}
