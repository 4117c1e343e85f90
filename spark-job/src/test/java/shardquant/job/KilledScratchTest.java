package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.ChildJvm;
import shardquant.JobTestSupport;

/**
 * A driver killed while embedded Spark runs (a real process exit, status 137: no shutdown hook, no
 * Spark cleanup) leaves Spark's scratch, shuffle files included, in its own folder under
 * {@code java.io.tmpdir/shardquant-scratch}, not loose in the temporary directory; the next run, of any
 * job, removes it, and a run that ends normally leaves nothing of Spark's in the temporary directory.
 */
class KilledScratchTest {
  private static final String[] SIZES = {"--recipe", "int4-tile-packed", "--shard-bytes", "65536",
      "--output-file-bytes", "1000000"};
  /** What native libraries unpack into java.io.tmpdir themselves (JCuda's one file, reused; lz4-java's per JVM). */
  private static final String NATIVE_LIBRARIES = "libJCudaDriver-.*\\.so|liblz4-java-\\d+\\.so(\\.lck)?";

  @TempDir
  Path tmp;

  @Test
  void aKilledRunsScratchStaysInItsFolderUntilTheNextRunRemovesIt() throws Exception {
    Path javaTmp = Files.createDirectories(tmp.resolve("java-tmp"));
    Path scratch = javaTmp.resolve(Scratch.PARENT);
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");

    ChildRun killed = cli(javaTmp, "killed", input, tmp.resolve("out-killed"), JobSparkContext.HALT_WHILE_RUNNING_CONF + "=true");
    assertEquals(137, killed.status(), killed.logs());
    assertTrue(killed.logs().contains("halting while running"), killed.logs());

    List<String> afterKill = JobTestSupport.listing(javaTmp);
    assertTrue(afterKill.contains(Scratch.PARENT), afterKill::toString);
    assertNothingOfSparksLoose(afterKill);
    List<String> left = JobTestSupport.listing(scratch);
    assertEquals(1, left.size(), left::toString);
    Path folder = scratch.resolve(left.get(0));
    String owner = Files.readString(folder.resolve(Scratch.OWNER_FILE));
    assertTrue(owner.startsWith("pid=" + left.get(0).substring(0, left.get(0).indexOf('-')) + "\n"), owner);
    List<String> inFolder = JobTestSupport.listing(folder);
    assertTrue(inFolder.stream().anyMatch(n -> n.startsWith("blockmgr-")), inFolder::toString);
    assertTrue(inFolder.stream().anyMatch(n -> n.startsWith("spark-")), inFolder::toString);
    Path blockManager = folder.resolve(inFolder.stream().filter(n -> n.startsWith("blockmgr-")).findFirst().orElseThrow());
    assertTrue(sizeOf(blockManager) > 0, () -> "no shuffle data left by the killed run: " + files(folder));

    // Another job, into another output: it removes the killed run's folder and, ending, its own.
    ChildRun next = cli(javaTmp, "next", input, tmp.resolve("out-next"));
    assertEquals(0, next.status(), next.logs());
    assertTrue(Files.exists(tmp.resolve("out-next").resolve("_SUCCESS")), next.logs());
    // SparkConf warns on every spark.local.dir that a cluster manager overrides it; none does in local mode.
    assertFalse(next.logs().contains("spark.local.dir will be overridden"), next.logs());
    assertFalse(Files.exists(folder), () -> folder + " still there: " + files(folder));
    assertEquals(List.of(), JobTestSupport.listing(scratch));

    List<String> afterNext = JobTestSupport.listing(javaTmp);
    assertNothingOfSparksLoose(afterNext);
    // Nothing new: the run that ended normally left no file of its own (its lz4 library went at exit).
    assertEquals(afterKill, afterNext);
    assertEquals(List.of(Scratch.PARENT), afterNext.stream().filter(n -> !n.matches(NATIVE_LIBRARIES)).toList(),
        afterNext::toString);
  }

  private static void assertNothingOfSparksLoose(List<String> javaTmpListing) {
    for (String n : javaTmpListing) {
      assertFalse(n.startsWith("spark-") || n.startsWith("blockmgr-"), () -> "Spark's " + n + " in java.io.tmpdir: "
          + javaTmpListing);
    }
  }

  private record ChildRun(int status, String logs) {}

  /** {@code shardquant quantize} in its own JVM with java.io.tmpdir = {@code javaTmp}, embedded Spark on 2 threads. */
  private ChildRun cli(Path javaTmp, String name, Path input, Path out, String... confs) throws Exception {
    List<String> args = new ArrayList<>(List.of("quantize", "--input", input.toString(), "--output", out.toString()));
    args.addAll(List.of(SIZES));
    args.addAll(List.of(JobTestSupport.LOCAL));
    for (String c : confs) {
      args.addAll(List.of("--conf", c));
    }
    Path sparkHome = Files.createDirectories(tmp.resolve("spark-home").resolve("jars")).getParent();
    Map<String, String> env = new HashMap<>();
    env.put("SPARK_HOME", sparkHome.toString());
    env.put("SPARK_LOCAL_DIRS", null); // Spark would prefer it to spark.local.dir, and so would we
    env.put("SPARK_EXECUTOR_DIRS", null);
    try (ChildJvm cli = ChildJvm.start(name, tmp.resolve("logs"), ChildJvm.testClasspath(), env,
        List.of("-Xmx512m", "-Djava.io.tmpdir=" + javaTmp), "shardquant.cli.Main", args)) {
      int status = cli.waitFor(Duration.ofSeconds(120));
      return new ChildRun(status, cli.logs());
    }
  }

  private static long sizeOf(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
    }
  }

  private static List<String> files(Path dir) {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.map(p -> dir.relativize(p) + " " + p.toFile().length()).toList();
    } catch (IOException e) {
      return List.of(e.toString());
    }
  }
}
