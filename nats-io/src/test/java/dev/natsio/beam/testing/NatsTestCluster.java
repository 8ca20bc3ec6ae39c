package dev.natsio.beam.testing;

import io.nats.client.Connection;
import io.nats.client.JetStreamManagement;
import io.nats.client.Nats;
import io.nats.client.Options;
import io.nats.client.api.ClusterInfo;
import io.nats.client.api.StorageType;
import io.nats.client.api.StreamConfiguration;
import io.nats.client.api.StreamInfo;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.rules.ExternalResource;

/**
 * A JetStream cluster of real {@code nats-server} processes on 127.0.0.1, for failover tests.
 *
 * <p>Each node is a {@link NatsTestServer} with its own client port, cluster port and store
 * directory; every node routes to every other. Ports are chosen up front (routes must name them)
 * by asking the OS for free ones. {@link #start()} returns once the cluster can place a stream on
 * every node (a meta leader alone is not enough). {@link #kill(int)} and {@link #restart(int)} act on one node
 * so tests can take down a stream leader mid-read.
 */
public final class NatsTestCluster extends ExternalResource implements AutoCloseable {
  private static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
  private static final String READY_PROBE = "natsio_cluster_ready_probe";

  private final List<NatsTestServer> nodes = new ArrayList<>();

  private NatsTestCluster(int size) {
    int[] clientPorts = freePorts(size);
    int[] clusterPorts = freePorts(size);
    String clusterName = "natsio-test";
    for (int i = 0; i < size; i++) {
      StringBuilder routes = new StringBuilder();
      for (int j = 0; j < size; j++) {
        if (j != i) {
          routes.append("    nats-route://127.0.0.1:").append(clusterPorts[j]).append('\n');
        }
      }
      String clusterBlock =
          "cluster {\n  name: " + clusterName + "\n  listen: 127.0.0.1:" + clusterPorts[i]
              + "\n  routes: [\n" + routes + "  ]\n}\n";
      nodes.add(
          NatsTestServer.builder()
              .withPort(clientPorts[i])
              .withServerName("n" + (i + 1))
              .withClusterBlock(clusterBlock)
              .withoutAwaitingJetStream()
              .build());
    }
  }

  /** A three-node JetStream cluster (not started). */
  public static NatsTestCluster ofThree() {
    return new NatsTestCluster(3);
  }

  /** Starts every node and waits until the cluster answers JetStream calls. */
  public NatsTestCluster start() {
    for (NatsTestServer node : nodes) {
      node.start();
    }
    awaitJetStream();
    return this;
  }

  public int size() {
    return nodes.size();
  }

  public NatsTestServer node(int index) {
    return nodes.get(index);
  }

  /** All nodes' URLs, comma-separated, as NatsIO's {@code withServers} takes them. */
  public String urls() {
    return nodes.stream().map(NatsTestServer::url).collect(Collectors.joining(","));
  }

  /** Client options listing every node, so jnats fails over between them. */
  public Options.Builder clientOptions() {
    return nodes.get(0).clientOptions().servers(nodes.stream().map(NatsTestServer::url).toArray(String[]::new));
  }

  public Connection connect() {
    try {
      return Nats.connect(clientOptions().build());
    } catch (IOException e) {
      throw new UncheckedIOException("Could not connect to the test cluster at " + urls(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** SIGKILLs one node. */
  public void kill(int index) {
    nodes.get(index).kill();
  }

  /** Starts a killed or stopped node again with its data and ports. */
  public void restart(int index) {
    NatsTestServer node = nodes.get(index);
    node.stop();
    node.start();
  }

  /** The index of the node that leads {@code stream}, as the stream's cluster info names it. */
  public int streamLeader(String stream) {
    try (Connection connection = connect()) {
      StreamInfo info = connection.jetStreamManagement().getStreamInfo(stream);
      ClusterInfo cluster = info.getClusterInfo();
      String leader = cluster == null ? null : cluster.getLeader();
      for (int i = 0; i < nodes.size(); i++) {
        if (("n" + (i + 1)).equals(leader)) {
          return i;
        }
      }
      throw new IllegalStateException("Stream " + stream + " has no known leader: " + cluster);
    } catch (Exception e) {
      throw new IllegalStateException("Could not read the leader of stream " + stream, e);
    }
  }

  /** Polls until the cluster can place a stream replicated on every node. */
  public void awaitJetStream() {
    long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
    Exception last = null;
    while (System.nanoTime() < deadline) {
      try (Connection connection = Nats.connect(clientOptions().maxReconnects(0).build())) {
        JetStreamManagement jsm = connection.jetStreamManagement();
        jsm.getAccountStatistics();
        // A meta leader can answer before every node has joined; placing a stream on all of them proves they have.
        jsm.addStream(
            StreamConfiguration.builder().name(READY_PROBE).subjects(READY_PROBE).replicas(nodes.size()).storageType(StorageType.Memory).build());
        jsm.deleteStream(READY_PROBE);
        return;
      } catch (Exception e) {
        last = e;
      }
      NatsTestServer.sleep(Duration.ofMillis(200));
    }
    throw new IllegalStateException(
        "The test cluster at " + urls() + " elected no JetStream meta leader within " + READY_TIMEOUT
            + "; node logs: " + nodes.stream().map(n -> n.logFile().toString()).collect(Collectors.joining(", ")),
        last);
  }

  @Override
  public void close() {
    for (NatsTestServer node : nodes) {
      node.close();
    }
  }

  @Override
  protected void before() {
    start();
  }

  @Override
  protected void after() {
    close();
  }

  private static int[] freePorts(int count) {
    List<ServerSocket> sockets = new ArrayList<>();
    try {
      int[] ports = new int[count];
      for (int i = 0; i < count; i++) {
        ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        sockets.add(socket);
        ports[i] = socket.getLocalPort();
      }
      return ports;
    } catch (IOException e) {
      throw new UncheckedIOException("Could not find free ports for a test cluster", e);
    } finally {
      for (ServerSocket socket : sockets) {
        try {
          socket.close();
        } catch (IOException ignored) {
          // The port is released either way.
        }
      }
    }
  }
}
