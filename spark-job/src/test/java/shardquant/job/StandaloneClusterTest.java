package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.ChildJvm;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;

/**
 * The job on a real Spark standalone cluster: a Master and two one-core Workers, each its own JVM on
 * loopback, executors launched by the Workers as further JVMs, the driver in this JVM. Executors
 * write the output files straight into the (here local, shared) output directory; the checkpoint must
 * be the one embedded Spark writes.
 */
class StandaloneClusterTest {
  private static final Duration START = Duration.ofSeconds(60);
  private static final String[] ARGS = {"--recipe", "int4-tile-packed", "--shard-bytes", "65536",
      "--output-file-bytes", "1000000"};

  @TempDir
  static Path tmp;

  private static final List<ChildJvm> daemons = new ArrayList<>();
  private static final List<Path> workDirs = new ArrayList<>();
  private static String masterUrl;
  private static Path log4j;

  @BeforeAll
  static void startCluster() throws Exception {
    Path sparkHome = tmp.resolve("spark-home"); // Workers need SPARK_HOME/jars to exist to launch executors
    Files.createDirectories(sparkHome.resolve("jars"));
    // The test log4j config keeps Spark at WARN; the daemons' readiness lines and the executors' task
    // lines are INFO.
    log4j = tmp.resolve("log4j2-daemons.properties");
    Files.writeString(log4j, String.join("\n",
        "status = warn",
        "appender.console.type = Console",
        "appender.console.name = console",
        "appender.console.target = SYSTEM_ERR",
        "appender.console.layout.type = PatternLayout",
        "appender.console.layout.pattern = %d{HH:mm:ss.SSS} %-5p %c{1}: %m%n%ex",
        "rootLogger.level = info",
        "rootLogger.appenderRef.console.ref = console",
        "logger.jetty.name = org.sparkproject.jetty",
        "logger.jetty.level = warn",
        ""));
    Map<String, String> env = Map.of("SPARK_HOME", sparkHome.toString(), "SPARK_SCALA_VERSION", "2.13",
        "SPARK_LOCAL_IP", "127.0.0.1");
    // The daemons only schedule: small heaps, quick start (C1 only, serial GC).
    List<String> jvm = List.of("-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
        "-Dlog4j2.configurationFile=" + log4j.toUri());
    Path logs = tmp.resolve("logs");
    int[] ports = ChildJvm.freePorts(4);
    masterUrl = "spark://127.0.0.1:" + ports[0];
    try {
      ChildJvm master = ChildJvm.start("master", logs, ChildJvm.testClasspath(), env, jvm,
          "org.apache.spark.deploy.master.Master",
          List.of("--host", "127.0.0.1", "--port", String.valueOf(ports[0]), "--webui-port", String.valueOf(ports[1])));
      daemons.add(master);
      master.awaitLog("I have been elected leader", START);
      for (int i = 0; i < 2; i++) {
        Path workDir = Files.createDirectories(tmp.resolve("worker-" + i));
        workDirs.add(workDir);
        daemons.add(ChildJvm.start("worker-" + i, logs, ChildJvm.testClasspath(), env, jvm,
            "org.apache.spark.deploy.worker.Worker",
            List.of("--host", "127.0.0.1", "--cores", "1", "--memory", "1g", "--work-dir", workDir.toString(),
                "--webui-port", String.valueOf(ports[2 + i]), masterUrl)));
      }
      for (ChildJvm worker : daemons.subList(1, daemons.size())) {
        worker.awaitLog("Successfully registered with master", START);
      }
    } catch (AssertionError e) {
      throw new AssertionError(e.getMessage() + "\n" + allLogs(), e);
    }
  }

  @AfterAll
  static void stopCluster() {
    // Workers first (with their executors), then the Master.
    for (int i = daemons.size() - 1; i >= 0; i--) {
      daemons.get(i).close();
    }
  }

  @Test
  void clusterWritesTheCheckpointEmbeddedSparkWrites() throws IOException {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Path cluster = tmp.resolve("cluster");
    List<String> args = new ArrayList<>(List.of("quantize", "--input", input.toString(), "--output", cluster.toString(),
        "--master", masterUrl));
    args.addAll(List.of(ARGS));
    for (String conf : List.of(
        "spark.driver.host=127.0.0.1",
        "spark.driver.bindAddress=127.0.0.1",
        "spark.ui.enabled=false",
        "spark.executor.memory=512m",
        "spark.executor.extraClassPath=" + ChildJvm.testClasspath(),
        "spark.executor.extraJavaOptions=" + String.join(" ", ChildJvm.jvmFlags()) + " -Dlog4j2.configurationFile="
            + log4j.toUri(),
        // Start no task before both executors are there, so that both get work.
        "spark.cores.max=2",
        "spark.scheduler.minRegisteredResourcesRatio=1.0",
        "spark.scheduler.maxRegisteredResourcesWaitingTime=60s")) {
      args.addAll(List.of("--conf", conf));
    }
    Run run = JobTestSupport.cli(args.toArray(new String[0]));
    assertEquals(0, run.status(), () -> run + "\n" + allLogs());
    assertTrue(run.out().lines().anyMatch(l -> l.endsWith("; Spark " + masterUrl)), run::toString);
    assertTrue(Files.exists(cluster.resolve("_SUCCESS")), run::toString);

    // Each Worker launched an executor for the application, and each executor ran tasks.
    for (Path workDir : workDirs) {
      String stderr = executorStderr(workDir);
      assertTrue(stderr.contains("Running task"), () -> "no task ran on the executor under " + workDir + "\n"
          + stderr + "\n" + allLogs());
    }

    Path local = tmp.resolve("local");
    Run embedded = JobTestSupport.quantize(input, local, ARGS);
    assertEquals(0, embedded.status(), embedded::toString);
    assertTrue(JobTestSupport.modelFiles(local).size() > 1);
    SameOutput.assertSame(local, cluster);
  }

  /** All executor stderr files of the Worker's work dir ({@code app-*}/{@code <executor id>}/stderr). */
  private static String executorStderr(Path workDir) throws IOException {
    StringBuilder all = new StringBuilder();
    List<Path> files;
    try (Stream<Path> s = Files.walk(workDir, 3)) {
      files = s.filter(p -> p.getFileName().toString().equals("stderr") && p.getParent().getParent().getFileName()
          .toString().startsWith("app-")).sorted().toList();
    }
    assertTrue(!files.isEmpty(), () -> "no executor of the application ran under " + workDir + "\n" + allLogs());
    for (Path f : files) {
      all.append(Files.readString(f));
    }
    return all.toString();
  }

  private static String allLogs() {
    StringBuilder b = new StringBuilder();
    daemons.forEach(d -> b.append(d.logs()).append('\n'));
    return b.toString();
  }
}
