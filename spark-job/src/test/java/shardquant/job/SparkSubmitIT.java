package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.ChildJvm;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.cli.Main;

/**
 * {@code spark-submit --class shardquant.cli.Main --master local[2] shardquant.jar quantize ...}, as a
 * user runs it: Spark's own launcher in its own JVM, with {@code spark-job/target/shardquant.jar} (the
 * jar the README says to submit, as {@code mvn package} built it) and nothing else of ours on the
 * classpath: an integration test, run by {@code mvn verify} after the jar exists. SparkSubmit's {@code --master}
 * reaching the job.
 */
class SparkSubmitIT {
  private static final String[] ARGS = {"--recipe", "8da4w", "--shard-bytes", "65536", "--output-file-bytes", "1000000"};

  @TempDir
  Path tmp;

  @Test
  void sparkSubmitRunsTheJobFromItsJar() throws Exception {
    // The jar the README tells users to submit, built by `mvn package` before this integration test runs.
    Path jar = Path.of(System.getProperty("shardquant.test.clusterJar", "target/shardquant.jar")).toAbsolutePath();
    assertTrue(Files.isRegularFile(jar), () -> jar + " missing: run the integration tests with mvn verify");
    Path repo = Path.of(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getParent().getParent()
        .getParent();
    // Spark, Hadoop and the rest as a cluster provides them; nothing of ours but the jar.
    String classpath = Arrays.stream(ChildJvm.testClasspath().split(File.pathSeparator))
        .filter(e -> !e.isEmpty() && !Path.of(e).toAbsolutePath().normalize().startsWith(repo)
            && !Path.of(e).getFileName().toString().startsWith("shardquant-"))
        .reduce((a, b) -> a + File.pathSeparator + b).orElseThrow();

    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Path out = tmp.resolve("out");
    List<String> args = new ArrayList<>(List.of("--class", "shardquant.cli.Main", "--master", "local[2]",
        "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", "spark.ui.enabled=false", jar.toString(),
        "quantize", "--input", input.toString(), "--output", out.toString()));
    args.addAll(List.of(ARGS));
    Path sparkHome = tmp.resolve("spark-home"); // no spark-defaults.conf of the machine's own Spark
    Files.createDirectories(sparkHome.resolve("jars"));
    Map<String, String> env = new HashMap<>();
    env.put("SPARK_HOME", sparkHome.toString());
    env.put("SPARK_CONF_DIR", null);
    int status;
    String stdout;
    String logs;
    try (ChildJvm submit = ChildJvm.start("spark-submit", tmp.resolve("logs"), classpath, env, List.of("-Xmx512m"),
        "org.apache.spark.deploy.SparkSubmit", args)) {
      status = submit.waitFor(Duration.ofSeconds(120));
      stdout = submit.out();
      logs = submit.logs();
    }
    assertEquals(0, status, logs);
    String summary = stdout.lines().filter(l -> l.contains(" kept from an earlier run); wall ")).findFirst()
        .orElseThrow(() -> new AssertionError("no summary line\n" + logs));
    assertTrue(summary.endsWith("Spark local[2]"), () -> summary + "\n" + logs);
    assertTrue(Files.exists(out.resolve("_SUCCESS")), JobTestSupport.listing(out)::toString);

    Run local = JobTestSupport.quantize(input, tmp.resolve("local"), ARGS);
    assertEquals(0, local.status(), local::toString);
    assertEquals(JobTestSupport.storedTensors(tmp.resolve("local")), JobTestSupport.storedTensors(out));
    SameOutput.assertSame(tmp.resolve("local"), out);
  }
}
