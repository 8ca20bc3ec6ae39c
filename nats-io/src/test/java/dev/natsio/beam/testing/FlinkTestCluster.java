package dev.natsio.beam.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;

/**
 * A standalone Flink 1.19 session cluster as separate JVMs on this machine, for tests that submit
 * a job jar the way users do and kill TaskManagers.
 *
 * <h2>What runs</h2>
 *
 * <p>One JobManager ({@code StandaloneSessionClusterEntrypoint}) and TaskManagers ({@code
 * TaskManagerRunner}), each a {@code java} process started with {@code --configDir} pointing at a
 * {@code flink-conf.yaml} of its own. Their classpath is Flink alone: the Flink runtime the Beam
 * Flink runner brings and an SLF4J 2 binding, written by Maven to the file named by the system
 * property {@code natsio.flinkClasspathFile} (integration/pom.xml); Beam, NatsIO and jnats come
 * with each job's jar, as on a real cluster. Flink's binary distribution is not needed.
 *
 * <h2>Configuration</h2>
 *
 * <p>Without Flink's shell scripts nothing computes memory sizes, so every TaskManager memory pool
 * and {@code taskmanager.cpu.cores} are set explicitly (the TaskManager refuses to start
 * otherwise), and the JVM's heap, direct and metaspace limits match them. Ports are free ones picked
 * at start (REST, JobManager RPC) or chosen by Flink (blob server, TaskManager RPC and data). Every
 * process has its own temporary directories. A low heartbeat timeout makes a killed TaskManager
 * noticed in seconds; {@code cluster.evenly-spread-out-slots} spreads a job's subtasks over the
 * TaskManagers.
 *
 * <h2>Jobs</h2>
 *
 * <p>{@link #submit} runs a client JVM on the job jar ({@code natsio.jobJar}) with {@code
 * --runner=FlinkRunner --flinkMaster=localhost:REST_PORT --filesToStage=JAR --attachedMode=false}
 * and returns the new job's id. The rest (status, checkpoints, stop with savepoint, cancel, where
 * subtasks ran) goes through Flink's REST API.
 *
 * <h2>Stopping</h2>
 *
 * <p>{@link #killTaskManager} sends SIGKILL to one TaskManager's process. {@link #close()} stops
 * every process it started by its handle (SIGTERM, then SIGKILL), copies the logs to {@code
 * natsio.flinkClusterLogs} and deletes the temporary directory; a shutdown hook kills whatever is
 * left if the test JVM ends first.
 */
public final class FlinkTestCluster implements AutoCloseable {
  private static final Duration START_TIMEOUT = Duration.ofSeconds(90);
  private static final Duration CLIENT_TIMEOUT = Duration.ofSeconds(180);
  private static final ObjectMapper JSON = new ObjectMapper();

  private final int slotsPerTaskManager;
  private final Path workDir;
  private final String classpath;
  private final Path jobJar;
  private final List<String> jvmOptions;
  private final int restPort;
  private final int rpcPort;
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  private final Map<String, Process> taskManagers = new LinkedHashMap<>();
  private Process jobManager;
  private int taskManagersStarted;
  private int clientsStarted;

  private FlinkTestCluster(int slotsPerTaskManager) throws IOException {
    this.slotsPerTaskManager = slotsPerTaskManager;
    this.workDir = Files.createTempDirectory("natsio-flink-cluster-");
    this.classpath = Files.readString(Paths.get(requiredProperty("natsio.flinkClasspathFile"))).trim();
    this.jobJar = Paths.get(requiredProperty("natsio.jobJar")).toAbsolutePath().normalize();
    if (!Files.isRegularFile(jobJar)) {
      throw new IllegalStateException("No job jar at " + jobJar + ": build it with `mvn -pl examples -am package`.");
    }
    this.jvmOptions = Arrays.stream(System.getProperty("natsio.flinkJvmOptions", "").trim().split("\\s+"))
        .filter(option -> !option.isEmpty()).toList();
    this.restPort = freePort();
    this.rpcPort = freePort();
  }

  /** Starts a JobManager and {@code taskManagers} TaskManagers and waits until all slots are registered. */
  public static FlinkTestCluster start(int taskManagers, int slotsPerTaskManager) {
    FlinkTestCluster cluster;
    try {
      cluster = new FlinkTestCluster(slotsPerTaskManager);
    } catch (IOException e) {
      throw new UncheckedIOException("Could not prepare a Flink cluster", e);
    }
    try {
      cluster.startJobManager();
      for (int i = 0; i < taskManagers; i++) {
        cluster.startTaskManager();
      }
      cluster.awaitTaskManagers(taskManagers);
      return cluster;
    } catch (RuntimeException | Error e) {
      cluster.close();
      throw e;
    }
  }

  /** The job jar the cluster's jobs are submitted from. */
  public Path jobJar() {
    return jobJar;
  }

  /** Where savepoints go unless a stop names another directory. */
  public Path savepointDir() {
    return workDir.resolve("savepoints");
  }

  /** Starts one more TaskManager and returns its resource id (e.g. {@code tm-3}). */
  public synchronized String startTaskManager() {
    String id = "tm-" + (++taskManagersStarted);
    Path dir = workDir.resolve(id);
    Map<String, String> conf = commonConfiguration();
    conf.put("taskmanager.resource-id", id);
    conf.put("taskmanager.host", "localhost");
    conf.put("taskmanager.bind-host", "localhost");
    conf.put("taskmanager.numberOfTaskSlots", Integer.toString(slotsPerTaskManager));
    conf.put("taskmanager.cpu.cores", Integer.toString(slotsPerTaskManager));
    conf.put("taskmanager.memory.framework.heap.size", "64m");
    conf.put("taskmanager.memory.task.heap.size", "320m");
    conf.put("taskmanager.memory.managed.size", "64m");
    conf.put("taskmanager.memory.network.min", "32m");
    conf.put("taskmanager.memory.network.max", "32m");
    conf.put("taskmanager.memory.framework.off-heap.size", "64m");
    conf.put("taskmanager.memory.task.off-heap.size", "32m");
    conf.put("taskmanager.memory.jvm-metaspace.size", "384m");
    conf.put("taskmanager.memory.jvm-overhead.min", "64m");
    conf.put("taskmanager.memory.jvm-overhead.max", "64m");
    conf.put("io.tmp.dirs", dir.resolve("tmp").toString());
    // Heap = framework + task heap; direct = framework + task off-heap + network; as Flink's scripts would set.
    Process process = startProcess(id, dir, conf, List.of("-Xms384m", "-Xmx384m", "-XX:MaxDirectMemorySize=128m", "-XX:MaxMetaspaceSize=384m"),
        "org.apache.flink.runtime.taskexecutor.TaskManagerRunner");
    taskManagers.put(id, process);
    return id;
  }

  /** Kills a TaskManager's process with SIGKILL, as a lost machine would, and waits until it is gone. */
  public synchronized void killTaskManager(String id) {
    Process process = taskManagers.remove(id);
    if (process == null) {
      throw new IllegalArgumentException("No running TaskManager " + id + "; running: " + taskManagers.keySet());
    }
    ManagedProcesses.kill(process);
  }

  /** Waits until exactly {@code count} TaskManagers are registered at the JobManager with all their slots. */
  public void awaitTaskManagers(int count) {
    await("Flink to register " + count + " TaskManagers", START_TIMEOUT, () -> {
      JsonNode overview = get("/overview");
      return overview.path("taskmanagers").asInt() == count
          && overview.path("slots-total").asInt() == count * slotsPerTaskManager;
    });
  }

  /** Waits until {@code count} slots are free: jobs that ended have handed theirs back. */
  public void awaitFreeSlots(int count) {
    await(count + " free slots", START_TIMEOUT, () -> get("/overview").path("slots-available").asInt() >= count);
  }

  /** The ids of the TaskManagers this harness started that are still running. */
  public synchronized List<String> runningTaskManagers() {
    return new ArrayList<>(taskManagers.keySet());
  }

  /**
   * Runs {@code mainClass} from the job jar in a client JVM, with the runner options that submit it
   * to this cluster detached, waits for the client to exit and returns the id of the job it
   * submitted.
   */
  public String submit(String mainClass, String... args) {
    Set<String> before = jobIds();
    int client;
    synchronized (this) {
      client = ++clientsStarted;
    }
    Path log = workDir.resolve("client-" + client + ".log");
    List<String> command = new ArrayList<>(List.of(javaBinary(), "-Xmx512m"));
    command.addAll(jvmOptions);
    command.addAll(List.of("-cp", jobJar.toString(), mainClass,
        "--runner=FlinkRunner", "--flinkMaster=localhost:" + restPort, "--filesToStage=" + jobJar, "--attachedMode=false"));
    command.addAll(List.of(args));
    try {
      Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
      ManagedProcesses.register(process);
      try {
        if (!process.waitFor(CLIENT_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
          process.destroyForcibly();
          throw new IllegalStateException("The client submitting " + mainClass + " did not exit within " + CLIENT_TIMEOUT + ":\n" + tail(log));
        }
        if (process.exitValue() != 0) {
          throw new IllegalStateException("The client submitting " + mainClass + " exited with " + process.exitValue() + ":\n" + tail(log));
        }
      } finally {
        ManagedProcesses.unregister(process);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("Could not start a client JVM", e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
    String[] found = new String[1];
    await("the job " + mainClass + " submitted to appear", Duration.ofSeconds(30), () -> {
      Set<String> now = jobIds();
      now.removeAll(before);
      found[0] = now.stream().findFirst().orElse(null);
      return found[0] != null;
    });
    return found[0];
  }

  /** A job's state: RUNNING, RESTARTING, FINISHED, CANCELED, FAILED, ... */
  public String jobState(String jobId) {
    return get("/jobs/" + jobId).path("state").asText();
  }

  /** Waits until the job is in {@code state}; fails at once if it failed instead. */
  public void awaitJobState(String jobId, String state, Duration timeout) {
    await("job " + jobId + " to be " + state, timeout, () -> {
      String now = jobState(jobId);
      if ("FAILED".equals(now) && !"FAILED".equals(state)) {
        throw new AssertionError("Job " + jobId + " failed: " + get("/jobs/" + jobId + "/exceptions").path("root-exception").asText());
      }
      return state.equals(now);
    });
  }

  /** Waits until the job is RUNNING with every subtask running (not only scheduled). */
  public void awaitJobRunning(String jobId, Duration timeout) {
    await("job " + jobId + " to run all its tasks", timeout, () -> {
      JsonNode job = get("/jobs/" + jobId);
      if ("FAILED".equals(job.path("state").asText())) {
        throw new AssertionError("Job " + jobId + " failed: " + get("/jobs/" + jobId + "/exceptions").path("root-exception").asText());
      }
      if (!"RUNNING".equals(job.path("state").asText())) {
        return false;
      }
      for (JsonNode vertex : job.path("vertices")) {
        if (!"RUNNING".equals(vertex.path("status").asText()) && !"FINISHED".equals(vertex.path("status").asText())) {
          return false;
        }
      }
      return true;
    });
  }

  /** The job's checkpoint statistics ({@code counts}, {@code latest.completed}, {@code latest.restored}). */
  public JsonNode checkpoints(String jobId) {
    return get("/jobs/" + jobId + "/checkpoints");
  }

  /** Waits until the job has completed {@code count} more checkpoints than {@code after}. */
  public void awaitCompletedCheckpoints(String jobId, long after, long count) {
    await(count + " more completed checkpoints of job " + jobId, START_TIMEOUT,
        () -> checkpoints(jobId).path("counts").path("completed").asLong() >= after + count);
  }

  /** Stops the job with a savepoint (no drain: windows are not closed early) and returns its location. */
  public String stopWithSavepoint(String jobId) {
    String body = "{\"targetDirectory\":\"" + savepointDir().toUri() + "\",\"drain\":false}";
    String trigger = send(HttpRequest.newBuilder(rest("/jobs/" + jobId + "/stop"))
        .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body))).path("request-id").asText();
    JsonNode[] done = new JsonNode[1];
    await("the savepoint of job " + jobId, START_TIMEOUT, () -> {
      done[0] = get("/jobs/" + jobId + "/savepoints/" + trigger);
      return "COMPLETED".equals(done[0].path("status").path("id").asText());
    });
    JsonNode operation = done[0].path("operation");
    if (!operation.has("location")) {
      throw new AssertionError("Stop with savepoint of job " + jobId + " failed: " + operation.path("failure-cause"));
    }
    return operation.path("location").asText();
  }

  /** Cancels the job and waits until it is CANCELED. */
  public void cancel(String jobId) {
    String state = jobState(jobId);
    if (state.equals("FINISHED") || state.equals("CANCELED") || state.equals("FAILED")) {
      return;
    }
    send(HttpRequest.newBuilder(rest("/jobs/" + jobId + "?mode=cancel")).method("PATCH", HttpRequest.BodyPublishers.noBody()));
    awaitJobState(jobId, "CANCELED", Duration.ofSeconds(60));
  }

  /** Cancels every job that is not finished yet. */
  public void cancelAll() {
    for (JsonNode job : get("/jobs").path("jobs")) {
      cancel(job.path("id").asText());
    }
  }

  /**
   * For each vertex (task chain) of the job whose name contains {@code nameFragment}: the resource
   * ids of the TaskManagers where its subtasks read at least one record.
   */
  public Set<String> taskManagersThatReadRecords(String jobId, String nameFragment) {
    Set<String> found = new HashSet<>();
    for (JsonNode vertex : get("/jobs/" + jobId).path("vertices")) {
      if (!vertex.path("name").asText().contains(nameFragment)) {
        continue;
      }
      for (JsonNode taskManager : get("/jobs/" + jobId + "/vertices/" + vertex.path("id").asText() + "/taskmanagers").path("taskmanagers")) {
        if (taskManager.path("metrics").path("read-records").asLong() > 0) {
          found.add(taskManager.path("taskmanager-id").asText());
        }
      }
    }
    return found;
  }

  /**
   * Records the job's vertices whose name contains {@code nameFragment} have sent downstream, summed
   * over their running (or, for a finished job, final) subtask attempts: counts restart from zero
   * when a job restarts. For a read chained up to a shuffle, the messages it read.
   */
  public long recordsSent(String jobId, String nameFragment) {
    return sumOverVertices(jobId, nameFragment, vertex -> vertex.path("metrics").path("write-records").asLong());
  }


  /** Subtasks of the job's vertices whose name contains {@code nameFragment} that have finished. */
  public long finishedSubtasks(String jobId, String nameFragment) {
    return sumOverVertices(jobId, nameFragment, vertex -> vertex.path("tasks").path("FINISHED").asLong());
  }

  private long sumOverVertices(String jobId, String nameFragment, java.util.function.ToLongFunction<JsonNode> field) {
    long sum = 0;
    for (JsonNode vertex : get("/jobs/" + jobId).path("vertices")) {
      if (vertex.path("name").asText().contains(nameFragment)) {
        sum += field.applyAsLong(vertex);
      }
    }
    return sum;
  }


  /**
   * {@link #recordsSent} once it has stopped changing for three seconds: the REST API answers from
   * a cache it refreshes after each request, so a single answer can be old.
   */
  public long settledRecordsSent(String jobId, String nameFragment) {
    long[] last = {-1};
    long[] since = {System.nanoTime()};
    await("the record count of " + nameFragment + " to settle", Duration.ofSeconds(60), () -> {
      long now = recordsSent(jobId, nameFragment);
      if (now != last[0]) {
        last[0] = now;
        since[0] = System.nanoTime();
      }
      return System.nanoTime() - since[0] >= Duration.ofSeconds(3).toNanos();
    });
    return last[0];
  }

  /**
   * What a job is doing, for a failure message: its state, and for each vertex its status, the
   * records it sent and each subtask's input watermark (Long.MIN_VALUE: none yet).
   */
  public String describe(String jobId) {
    StringBuilder description = new StringBuilder("job " + jobId + " " + jobState(jobId));
    for (JsonNode vertex : get("/jobs/" + jobId).path("vertices")) {
      String id = vertex.path("id").asText();
      description.append("\n  ").append(vertex.path("name").asText()).append(": ").append(vertex.path("status").asText())
          .append(", sent ").append(vertex.path("metrics").path("write-records").asLong()).append(", input watermarks");
      for (JsonNode watermark : get("/jobs/" + jobId + "/vertices/" + id + "/watermarks")) {
        description.append(' ').append(watermark.path("id").asText()).append('=').append(watermark.path("value").asText());
      }
      // Each operator's watermarks and record counts, per subtask: where in a chain a watermark stops.
      List<String> wanted = new ArrayList<>();
      for (JsonNode metric : get("/jobs/" + jobId + "/vertices/" + id + "/metrics")) {
        String name = metric.path("id").asText();
        if (name.endsWith("Watermark") || name.endsWith(".numRecordsOut") || name.endsWith(".numRecordsIn")) {
          wanted.add(name);
        }
      }
      for (int from = 0; from < wanted.size(); from += 20) {
        String names = String.join(",", wanted.subList(from, Math.min(wanted.size(), from + 20)));
        for (JsonNode metric : get("/jobs/" + jobId + "/vertices/" + id + "/metrics?get="
            + java.net.URLEncoder.encode(names, StandardCharsets.UTF_8))) {
          description.append("\n    ").append(metric.path("id").asText()).append('=').append(metric.path("value").asText());
        }
      }
    }
    return description.toString();
  }

  /** A GET on the REST API, as JSON. */
  public JsonNode get(String path) {
    return send(HttpRequest.newBuilder(rest(path)).GET());
  }

  /** Stops every process this harness started, copies the logs out and deletes the temporary directory. */
  @Override
  public synchronized void close() {
    List<Process> all = new ArrayList<>(taskManagers.values());
    if (jobManager != null) {
      all.add(jobManager);
    }
    for (Process process : all) {
      process.destroy();
    }
    all.forEach(ManagedProcesses::stop);
    taskManagers.clear();
    jobManager = null;
    copyLogs();
    NatsTestServer.deleteRecursively(workDir);
  }

  private void startJobManager() {
    Path dir = workDir.resolve("jobmanager");
    Map<String, String> conf = commonConfiguration();
    conf.put("jobmanager.bind-host", "localhost");
    conf.put("rest.address", "localhost");
    conf.put("rest.bind-address", "localhost");
    conf.put("rest.port", Integer.toString(restPort));
    conf.put("web.tmpdir", dir.resolve("web").toString());
    conf.put("web.upload.dir", dir.resolve("uploads").toString());
    conf.put("io.tmp.dirs", dir.resolve("tmp").toString());
    conf.put("blob.storage.directory", dir.resolve("blobs").toString());
    jobManager = startProcess("jobmanager", dir, conf, List.of("-Xms256m", "-Xmx512m", "-XX:MaxMetaspaceSize=256m"),
        "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint");
    await("the JobManager's REST API on port " + restPort, START_TIMEOUT, () -> {
      if (!jobManager.isAlive()) {
        throw new IllegalStateException("The JobManager exited with " + jobManager.exitValue() + ":\n" + tail(workDir.resolve("jobmanager.log")));
      }
      try {
        get("/overview");
        return true;
      } catch (RuntimeException e) {
        return false;
      }
    });
  }

  /** Settings every process shares: where the JobManager is, heartbeats, slot spreading, state directories. */
  private Map<String, String> commonConfiguration() {
    Map<String, String> conf = new LinkedHashMap<>();
    conf.put("jobmanager.rpc.address", "localhost");
    conf.put("jobmanager.rpc.port", Integer.toString(rpcPort));
    conf.put("heartbeat.interval", "1000");
    conf.put("heartbeat.timeout", "5000");
    conf.put("cluster.evenly-spread-out-slots", "true");
    conf.put("state.savepoints.dir", savepointDir().toUri().toString());
    conf.put("state.checkpoints.dir", workDir.resolve("checkpoints").toUri().toString());
    // Beam's classes stay referenced by JVM-wide caches after a job ends; Flink's check would fail
    // a later job's class loading for that, not for a real leak.
    conf.put("classloader.check-leaked-classloader", "false");
    // Per-TaskManager record counts in the REST API refresh every second instead of every ten.
    conf.put("metrics.fetcher.update-interval", "1000");
    return conf;
  }

  private Process startProcess(String name, Path dir, Map<String, String> conf, List<String> memoryOptions, String mainClass) {
    try {
      Files.createDirectories(dir.resolve("tmp"));
      StringBuilder yaml = new StringBuilder();
      conf.forEach((key, value) -> yaml.append(key).append(": ").append(value).append('\n'));
      Files.writeString(dir.resolve("flink-conf.yaml"), yaml.toString());
      List<String> command = new ArrayList<>(List.of(javaBinary()));
      command.addAll(memoryOptions);
      command.addAll(jvmOptions);
      command.addAll(List.of(
          "-Djava.io.tmpdir=" + dir.resolve("tmp"),
          "-Dorg.slf4j.simpleLogger.showDateTime=true",
          "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
          "-cp", classpath, mainClass, "--configDir", dir.toString()));
      Process process = new ProcessBuilder(command)
          .redirectErrorStream(true)
          .redirectOutput(workDir.resolve(name + ".log").toFile())
          .start();
      ManagedProcesses.register(process);
      return process;
    } catch (IOException e) {
      throw new UncheckedIOException("Could not start Flink's " + name, e);
    }
  }

  private Set<String> jobIds() {
    Set<String> ids = new HashSet<>();
    for (JsonNode job : get("/jobs").path("jobs")) {
      ids.add(job.path("id").asText());
    }
    return ids;
  }

  private URI rest(String path) {
    return URI.create("http://localhost:" + restPort + path);
  }

  private JsonNode send(HttpRequest.Builder request) {
    try {
      HttpResponse<String> response = http.send(request.timeout(Duration.ofSeconds(20)).build(), HttpResponse.BodyHandlers.ofString());
      if (response.statusCode() >= 300) {
        throw new IllegalStateException("Flink REST " + response.request().method() + " " + response.uri() + " answered "
            + response.statusCode() + ": " + response.body());
      }
      return response.body().isEmpty() ? JSON.createObjectNode() : JSON.readTree(response.body());
    } catch (IOException e) {
      throw new UncheckedIOException("Flink REST call failed: " + request.build().uri(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Polls {@code condition} every 200 ms until it holds; fails naming {@code what} after {@code timeout}. */
  public static void await(String what, Duration timeout, BooleanSupplier condition) {
    long deadline = System.nanoTime() + timeout.toNanos();
    RuntimeException last = null;
    while (System.nanoTime() < deadline) {
      try {
        if (condition.getAsBoolean()) {
          return;
        }
      } catch (UncheckedIOException e) {
        last = e;
      }
      try {
        Thread.sleep(200);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
    }
    throw new AssertionError("Timed out after " + timeout.toSeconds() + " s waiting for " + what, last);
  }

  private void copyLogs() {
    String target = System.getProperty("natsio.flinkClusterLogs");
    if (target == null) {
      return;
    }
    try (Stream<Path> logs = Files.list(workDir)) {
      Path dir = Files.createDirectories(Paths.get(target).resolve(workDir.getFileName().toString()));
      for (Path log : (Iterable<Path>) logs.filter(p -> p.toString().endsWith(".log"))::iterator) {
        Files.copy(log, dir.resolve(log.getFileName()), StandardCopyOption.REPLACE_EXISTING);
      }
    } catch (IOException e) {
      // Logs are for reading after a failure; missing ones must not fail the test.
    }
  }

  private static String tail(Path log) {
    try {
      List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 60), lines.size()));
    } catch (IOException e) {
      return "(no log at " + log + ")";
    }
  }

  private static String javaBinary() {
    return Paths.get(System.getProperty("java.home"), "bin", "java").toString();
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }

  private static String requiredProperty(String name) {
    String value = System.getProperty(name);
    if (value == null) {
      throw new IllegalStateException("System property " + name + " is not set; run the tests through Maven (integration/pom.xml sets it).");
    }
    return value;
  }

}
