package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.ChildJvm;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.cli.Main;

/**
 * {@code spark-submit --class shardquant.cli.Main --master local[2] shardquant.jar quantize ...}, as a
 * user runs it: Spark's own launcher in its own JVM, with the job's classes only in the application
 * jar (spark-job's classes are left off the JVM's classpath), and SparkSubmit's {@code --master}
 * reaching the job.
 */
class SparkSubmitTest {
  private static final String[] ARGS = {"--recipe", "8da4w", "--shard-bytes", "65536", "--output-file-bytes", "1000000"};

  @TempDir
  Path tmp;

  @Test
  void sparkSubmitRunsTheJobFromItsJar() throws Exception {
    Path classes = Path.of(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI());
    assertTrue(Files.isDirectory(classes), () -> "spark-job's classes should be a directory here: " + classes);
    Path jar = jar(classes, tmp.resolve("shardquant.jar"));
    String classpath = Arrays.stream(ChildJvm.testClasspath().split(File.pathSeparator))
        .filter(e -> !e.isEmpty() && !samePath(Path.of(e), classes))
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

  private static boolean samePath(Path a, Path b) {
    return a.toAbsolutePath().normalize().equals(b.toAbsolutePath().normalize());
  }

  /** A jar of everything under {@code classes}, entries in a fixed order. */
  private static Path jar(Path classes, Path jar) throws IOException {
    Manifest manifest = new Manifest();
    manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
    List<Path> files;
    try (Stream<Path> s = Files.walk(classes)) {
      files = s.filter(Files::isRegularFile).sorted().toList();
    }
    try (OutputStream o = Files.newOutputStream(jar); JarOutputStream j = new JarOutputStream(o, manifest)) {
      for (Path f : files) {
        String name = classes.relativize(f).toString().replace(File.separatorChar, '/');
        if (name.equals("META-INF/MANIFEST.MF")) {
          continue;
        }
        j.putNextEntry(new JarEntry(name));
        Files.copy(f, j);
        j.closeEntry();
      }
    }
    return jar;
  }
}
