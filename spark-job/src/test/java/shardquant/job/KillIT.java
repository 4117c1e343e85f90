package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.cli.Main;
import shardquant.common.TestPause;

/**
 * SIGKILL of a real {@code bin/shardquant quantize} process (an integration test: it runs the packaged
 * build) at three points: during the quantize stage, during assembly with some files renamed into place
 * and the last one not, and between the last rename and the commit. At the kill nothing a loader could
 * read is half-written (no index, no {@code _SUCCESS}, every visible model file complete); the rerun says
 * what it kept and its output is byte-identical to a clean run's (SHA-256 of every file but the report's
 * timings).
 */
class KillIT {
  private static final List<String> ARGS = List.of("--recipe", "8da4w", "--shard-bytes", "65536", "--output-file-bytes",
      "400000", "--master", "local[2]", "--conf", "spark.driver.host=127.0.0.1", "--conf",
      "spark.driver.bindAddress=127.0.0.1", "--conf", "spark.ui.enabled=false");

  @TempDir
  static Path shared;
  static Path clean;

  @TempDir
  Path tmp;

  /** One clean run, the byte-for-byte reference of every rerun. */
  @org.junit.jupiter.api.BeforeAll
  static void cleanRun() throws Exception {
    clean = shared.resolve("clean");
    Path log = shared.resolve("clean.log");
    Process p = start(clean, List.of(), log, shared);
    assertTrue(p.waitFor(180, TimeUnit.SECONDS), "clean run timed out");
    assertEquals(0, p.exitValue(), () -> read(log));
  }

  static Path repo() throws Exception {
    return Path.of(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getParent().getParent()
        .getParent();
  }

  static Process start(Path out, List<String> extra, Path log, Path tmp) throws Exception {
    List<String> cmd = new ArrayList<>(List.of("bash", repo().resolve("bin/shardquant").toString(), "quantize", "--input",
        JobTestSupport.golden("transformers-5.18").resolve("input").toString(), "--output", out.toString()));
    cmd.addAll(ARGS);
    cmd.addAll(extra);
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
    pb.environment().put("SHARDQUANT_NO_BUILD", "1");
    pb.environment().put("JAVA_OPTS", "-Xmx768m -Djava.io.tmpdir=" + Files.createDirectories(tmp.resolve("jtmp")));
    return pb.start();
  }

  @ParameterizedTest(name = "killed at {0}")
  @ValueSource(strings = {"quantize", "assembly", "commit"})
  void aKilledRunLeavesNothingHalfWrittenAndTheRerunCompletesIt(String point) throws Exception {
    Path out = tmp.resolve("out");
    Path killedLog = tmp.resolve("killed.log");
    Process k = start(out, List.of("--conf", TestPause.CONF + "=" + point), killedLog, tmp);
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(150);
    while (!read(killedLog).contains("paused at " + point)
        || point.equals("assembly") && JobTestSupport.modelFiles(out).isEmpty()) {
      assertTrue(k.isAlive(), () -> "the run ended before its pause:\n" + read(killedLog));
      assertTrue(System.nanoTime() < deadline, () -> "no pause at " + point + ":\n" + read(killedLog));
      Thread.sleep(100);
    }
    k.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
    k.destroyForcibly(); // SIGKILL
    assertTrue(k.waitFor(30, TimeUnit.SECONDS));

    // Nothing a loader could read is half-written.
    List<String> visible = JobTestSupport.listing(out).stream().filter(n -> !n.startsWith(".")).toList();
    assertFalse(visible.contains("_SUCCESS"), visible::toString);
    assertFalse(visible.contains("model.safetensors.index.json"), visible::toString);
    List<Path> renamed = JobTestSupport.modelFiles(out);
    for (Path f : renamed) {
      assertEquals(-1L, Files.mismatch(clean.resolve(f.getFileName()), f), f + " is complete");
    }
    int all = JobTestSupport.modelFiles(clean).size();
    if (point.equals("assembly")) {
      assertTrue(!renamed.isEmpty() && renamed.size() < all, () -> "some files renamed, not all: " + renamed);
    } else if (point.equals("commit")) {
      assertEquals(all, renamed.size());
    }

    Path rerunLog = tmp.resolve("rerun.log");
    Process r = start(out, List.of(), rerunLog, tmp);
    assertTrue(r.waitFor(180, TimeUnit.SECONDS), "rerun timed out");
    assertEquals(0, r.exitValue(), () -> read(rerunLog));
    if (!renamed.isEmpty()) {
      assertTrue(read(rerunLog).contains("(" + renamed.size() + " already committed by an earlier run: kept)"),
          () -> read(rerunLog));
    }
    assertEquals(hashes(clean), hashes(out));
  }

  /** SHA-256 of every file (hidden ones too), the report's timings aside. */
  static Map<String, String> hashes(Path dir) throws IOException {
    Map<String, String> out = new TreeMap<>();
    for (String name : JobTestSupport.listing(dir)) {
      if (!name.equals("quantization_report.json")) {
        out.put(name, shardquant.io.Storage.sha256(Files.readAllBytes(dir.resolve(name))));
      }
    }
    return out;
  }

  static String read(Path log) {
    try {
      return Files.exists(log) ? Files.readString(log) : "";
    } catch (IOException e) {
      return e.toString();
    }
  }
}
