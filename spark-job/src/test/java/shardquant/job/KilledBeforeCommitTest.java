package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.ChildJvm;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.kernels.safetensors.SafetensorsFile;

/**
 * A driver killed after every file is written but before the commit (a real process exit, status
 * 137, no shutdown hooks) leaves nothing a loader would take for a checkpoint: no index, no
 * {@code _SUCCESS}, no partial file under a visible name. A rerun keeps the finished files and commits
 * the same bytes a fresh run writes.
 */
class KilledBeforeCommitTest {
  private static final String[] SIZES = {"--recipe", "int4-tile-packed", "--shard-bytes", "65536",
      "--output-file-bytes", "1000000"};

  @TempDir
  Path tmp;

  @Test
  void rerunAfterAKilledDriverKeepsTheFilesAndCommitsTheSameOutput() throws Exception {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Path out = tmp.resolve("out");
    List<String> args = new ArrayList<>(List.of("quantize", "--input", input.toString(), "--output", out.toString()));
    args.addAll(List.of(SIZES));
    args.addAll(List.of("--master", "local[2]", "--conf", "spark.driver.host=127.0.0.1", "--conf",
        "spark.driver.bindAddress=127.0.0.1", "--conf", "spark.ui.enabled=false", "--conf",
        QuantizeJob.HALT_BEFORE_COMMIT_CONF + "=true"));
    int status;
    String logs;
    try (ChildJvm cli = ChildJvm.start("killed-cli", tmp.resolve("logs"), ChildJvm.testClasspath(),
        Map.of("SPARK_HOME", emptySparkHome().toString()), List.of("-Xmx512m"), "shardquant.cli.Main", args)) {
      status = cli.waitFor(Duration.ofSeconds(120));
      logs = cli.logs();
    }
    assertEquals(137, status, logs);
    assertTrue(logs.contains("halting before commit"), logs);

    Run fresh = JobTestSupport.quantize(input, tmp.resolve("fresh"), SIZES);
    assertEquals(0, fresh.status(), fresh::toString);
    List<Path> freshFiles = JobTestSupport.modelFiles(tmp.resolve("fresh"));
    assertTrue(freshFiles.size() > 1, freshFiles::toString);

    List<String> visible = JobTestSupport.listing(out).stream().filter(n -> !n.startsWith(".")).toList();
    Map<String, byte[]> halted = new TreeMap<>();
    assertFalse(visible.contains("_SUCCESS"), visible::toString);
    assertFalse(visible.contains("model.safetensors.index.json"), visible::toString);
    for (String name : visible) {
      assertTrue(name.matches("model-\\d{5}-of-\\d{5}\\.safetensors"), () -> "unexpected visible file " + name + " in " + visible);
      try (SafetensorsFile f = SafetensorsFile.open(out.resolve(name))) {
        assertFalse(f.entries().isEmpty(), name);
      }
      // Complete: the same file as the fresh run's of that name.
      SameOutput.assertSameFile(tmp.resolve("fresh").resolve(name), out.resolve(name));
      halted.put(name, Files.readAllBytes(out.resolve(name)));
    }
    assertEquals(freshFiles.size(), visible.size(), () -> "files left by the killed run: " + visible);

    Run rerun = JobTestSupport.quantize(input, out, SIZES);
    assertEquals(0, rerun.status(), rerun::toString);
    assertTrue(rerun.err().contains("(" + freshFiles.size() + " already committed by an earlier run: kept)"),
        rerun::toString);
    assertTrue(rerun.out().contains("(0 written, " + freshFiles.size() + " kept from an earlier run)"), rerun::toString);
    assertTrue(Files.exists(out.resolve("_SUCCESS")), JobTestSupport.listing(out)::toString);
    assertEquals(JobTestSupport.listing(tmp.resolve("fresh")), JobTestSupport.listing(out));
    for (Map.Entry<String, byte[]> kept : halted.entrySet()) { // kept as they were, not rewritten
      assertArrayEquals(kept.getValue(), Files.readAllBytes(out.resolve(kept.getKey())), kept.getKey());
    }
    SameOutput.assertSame(tmp.resolve("fresh"), out);
    assertEquals(JobTestSupport.storedTensors(tmp.resolve("fresh")), JobTestSupport.storedTensors(out));
  }

  private Path emptySparkHome() throws IOException {
    Path home = tmp.resolve("spark-home");
    Files.createDirectories(home.resolve("jars"));
    return home;
  }
}
