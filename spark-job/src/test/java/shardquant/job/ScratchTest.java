package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;

/**
 * Embedded Spark's scratch folder per job ({@link Scratch}): where it goes, when the user's choice
 * stands, and which leftover folders a run removes (those whose owner process is gone, judged by pid
 * and start time). The crash itself, in a real process, is {@link KilledScratchTest}.
 */
class ScratchTest {
  @TempDir
  Path tmp;

  private static SparkConf conf(String master) {
    return new SparkConf(false).setMaster(master);
  }

  @Test
  void localModeGetsAFolderOfItsOwnWithItsOwnerAndCloseRemovesIt() throws IOException {
    SparkConf conf = conf("local[2]");
    Path dir;
    try (Scratch s = Scratch.forJob(conf, tmp, Map.of())) {
      dir = s.dir();
      assertEquals(tmp.toAbsolutePath().resolve(Scratch.PARENT), dir.getParent());
      assertTrue(dir.getFileName().toString().startsWith(ProcessHandle.current().pid() + "-"), dir::toString);
      assertEquals(dir.toString(), conf.get("spark.local.dir"));
      String owner = Files.readString(dir.resolve(Scratch.OWNER_FILE));
      assertTrue(owner.contains("pid=" + ProcessHandle.current().pid() + "\n"), owner);
      assertTrue(owner.contains("start=" + ProcessHandle.current().info().startInstant().orElseThrow() + "\n"), owner);
      assertTrue(Scratch.ownerAlive(dir, String.valueOf(ProcessHandle.current().pid())));
      Files.createDirectories(dir.resolve("blockmgr-x/0c"));
      Files.write(dir.resolve("blockmgr-x/0c/shuffle_0_0_0.data"), new byte[1000]);
    }
    assertFalse(Files.exists(dir), dir::toString);
    assertEquals(List.of(), JobTestSupport.listing(tmp.resolve(Scratch.PARENT)));
  }

  @Test
  void theUsersScratchSpaceAndClusterMastersAreLeftAlone() {
    SparkConf explicit = conf("local[2]").set("spark.local.dir", "/data/spark");
    try (Scratch s = Scratch.forJob(explicit, tmp, Map.of())) {
      assertNull(s.dir());
      assertEquals("/data/spark", explicit.get("spark.local.dir"));
    }
    for (String env : List.of("SPARK_LOCAL_DIRS", "SPARK_EXECUTOR_DIRS")) {
      SparkConf c = conf("local[2]");
      try (Scratch s = Scratch.forJob(c, tmp, Map.of(env, "/data/spark"))) {
        assertNull(s.dir(), env);
        assertFalse(c.contains("spark.local.dir"), env);
      }
    }
    for (String master : List.of("spark://127.0.0.1:7077", "yarn", "k8s://https://k:443")) {
      SparkConf c = conf(master);
      try (Scratch s = Scratch.forJob(c, tmp, Map.of())) {
        assertNull(s.dir(), master);
        assertFalse(c.contains("spark.local.dir"), master);
      }
    }
    assertFalse(Files.exists(tmp.resolve(Scratch.PARENT).resolve("x")));
  }

  @Test
  void aRunRemovesTheFoldersOfEndedOwnersOnly() throws Exception {
    Path parent = tmp.resolve(Scratch.PARENT);
    Files.createDirectories(parent);
    ProcessHandle self = ProcessHandle.current();
    Instant start = self.info().startInstant().orElseThrow();

    Process ended = new ProcessBuilder("true").start();
    ended.waitFor();
    long deadPid = ended.pid();
    Path dead = folder(parent, deadPid + "-0123456789ab", "pid=" + deadPid + "\nstart=" + Instant.EPOCH + "\n");
    Path deadNoOwner = folder(parent, deadPid + "-00000000cafe", null);
    // Our pid, but another start time: a process that had this pid before and is gone.
    Path reused = folder(parent, self.pid() + "-aaaaaaaaaaaa", "pid=" + self.pid() + "\nstart=" + start.minusSeconds(3600) + "\n");
    Path alive = folder(parent, self.pid() + "-bbbbbbbbbbbb", "pid=" + self.pid() + "\nstart=" + start + "\n");
    Path beingCreated = folder(parent, self.pid() + "-cccccccccccc", null);
    Path notOurs = folder(parent, "notes", null);
    Path notOursEither = folder(parent, deadPid + "-xyz", null);

    List<Path> removed = Scratch.sweep(parent);

    assertEquals(List.of(dead, deadNoOwner, reused).stream().sorted().toList(), removed.stream().sorted().toList());
    for (Path p : List.of(dead, deadNoOwner, reused)) {
      assertFalse(Files.exists(p), p::toString);
    }
    for (Path p : List.of(alive, beingCreated, notOurs, notOursEither)) {
      assertTrue(Files.isDirectory(p), p::toString);
      assertTrue(Files.exists(p.resolve("blockmgr-1/shuffle_0_0_0.data")), p::toString);
    }
  }

  /** A scratch-like folder with a shuffle file, and an owner file unless {@code owner} is null. */
  private static Path folder(Path parent, String name, String owner) throws IOException {
    Path d = Files.createDirectories(parent.resolve(name).resolve("blockmgr-1"));
    Files.write(d.resolve("shuffle_0_0_0.data"), new byte[4096]);
    if (owner != null) {
      Files.writeString(parent.resolve(name).resolve(Scratch.OWNER_FILE), owner);
    }
    return parent.resolve(name);
  }

  /** In this JVM, as the tests run jobs: the scratch of a finished job is gone, and Spark used it. */
  @Test
  void aFinishedJobLeavesNoScratchFolderAndTheUsersLocalDirIsUsed() throws IOException {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Run r = JobTestSupport.quantize(input, tmp.resolve("out"), "--recipe", "int8-weight-only");
    assertEquals(0, r.status(), r::toString);
    assertEquals(List.of(), ownFolders());

    Path mine = Files.createDirectories(tmp.resolve("my-local-dir"));
    Run explicit = JobTestSupport.quantize(input, tmp.resolve("out2"), "--recipe", "int8-weight-only", "--conf",
        "spark.local.dir=" + mine);
    assertEquals(0, explicit.status(), explicit::toString);
    // Spark's driver folder stays until this JVM exits (Spark's own shutdown hook removes it).
    assertTrue(JobTestSupport.listing(mine).stream().anyMatch(n -> n.startsWith("spark-")), () -> mine + ": "
        + listingOrEmpty(mine));
    assertEquals(List.of(), ownFolders());
  }

  /** This JVM's folders under java.io.tmpdir/shardquant-scratch. */
  private static List<String> ownFolders() throws IOException {
    Path parent = Path.of(System.getProperty("java.io.tmpdir")).resolve(Scratch.PARENT);
    if (!Files.isDirectory(parent)) {
      return List.of();
    }
    try (Stream<Path> s = Files.list(parent)) {
      return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(ProcessHandle.current().pid() + "-")).toList();
    }
  }

  private static List<String> listingOrEmpty(Path dir) {
    try {
      return JobTestSupport.listing(dir);
    } catch (IOException e) {
      return List.of(e.toString());
    }
  }
}
