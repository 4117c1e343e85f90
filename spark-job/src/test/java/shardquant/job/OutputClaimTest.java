package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.ChildJvm;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.commit.OutputClaim;
import shardquant.kernels.safetensors.SafetensorsFile;

/**
 * One job per output directory, and output that cannot be written is the user's error up front: a second
 * job (another recipe, in another process) is refused naming the holder while the first commits alone; a
 * rerun of the same job takes over the claim a killed run left; a directory that cannot be written, a file
 * system with too little free space, and a device that fills up mid-write each exit 2 with one line and
 * leave nothing a loader would read.
 */
class OutputClaimTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path tmp;

  @AfterEach
  void resetFaults() {
    FaultyFs.reset();
  }

  static Path input() {
    return JobTestSupport.golden("transformers-5.18").resolve("input");
  }

  /** Job id of a committed output, from its files' headers. */
  static String jobId(Path out) throws IOException {
    try (SafetensorsFile f = SafetensorsFile.open(JobTestSupport.modelFiles(out).get(0))) {
      return JSON.readTree(f.metadata().get("shardquant")).path("job").asText();
    }
  }

  static void writeClaim(Path out, String job, long pid, String processStart) throws IOException {
    ObjectNode c = JSON.createObjectNode();
    c.put("job", job);
    c.put("command", "quantize");
    c.put("host", InetAddress.getLocalHost().getHostName());
    c.put("pid", pid);
    c.put("process_start", processStart);
    c.put("claimed", "2026-01-01T00:00:00Z");
    Files.createDirectories(out);
    Files.writeString(out.resolve(OutputClaim.NAME), c.toString());
  }

  static String myStart() {
    return ProcessHandle.current().info().startInstant().map(Instant::toString).orElse("");
  }

  @Test
  void anotherJobsClaimIsRefusedNamingTheHolderLiveOrNot() throws IOException {
    Path out = tmp.resolve("out");
    writeClaim(out, "f00d" + "0".repeat(60), ProcessHandle.current().pid(), myStart());
    Run r = JobTestSupport.quantize(input(), out, "--recipe", "8da4w");
    String line = BadInputTest.assertRefused(r, null, "another shardquant job holds this output directory",
        "quantize f00d00000000 on", "pid " + ProcessHandle.current().pid());
    assertTrue(line.contains(out.toString()), line);
    assertEquals(List.of(OutputClaim.NAME), JobTestSupport.listing(out), "the holder's claim stays, nothing is added");

    writeClaim(out, "f00d" + "0".repeat(60), 999_999_999L, "");
    BadInputTest.assertRefused(JobTestSupport.quantize(input(), out, "--recipe", "8da4w"), null,
        "another shardquant job holds this output directory");
  }

  @Test
  void theSameJobTakesOverAClaimItsKilledRunLeftButNotALiveOne() throws IOException {
    Path out = tmp.resolve("out");
    assertEquals(0, JobTestSupport.quantize(input(), out, "--recipe", "8da4w").status());
    assertFalse(Files.exists(out.resolve(OutputClaim.NAME)), "released at commit");
    String job = jobId(out);

    writeClaim(out, job, ProcessHandle.current().pid(), myStart());
    BadInputTest.assertRefused(JobTestSupport.quantize(input(), out, "--recipe", "8da4w"), null,
        "this job is already running into this output directory");

    writeClaim(out, job, 999_999_999L, "2020-01-01T00:00:00Z"); // its process is gone
    Run r = JobTestSupport.quantize(input(), out, "--recipe", "8da4w");
    assertEquals(0, r.status(), r::toString);
    assertFalse(Files.exists(out.resolve(OutputClaim.NAME)));
    assertTrue(Files.exists(out.resolve("_SUCCESS")));
  }

  /** Two jobs with different recipes started together into one directory, in two processes: one commits, one is refused. */
  @Test
  void twoConcurrentJobsNeverMixTheirFiles() throws Exception {
    Path out = tmp.resolve("out");
    List<ChildJvm> jobs = new ArrayList<>();
    for (String recipe : List.of("8da4w", "int8-weight-only")) {
      List<String> args = new ArrayList<>(List.of("quantize", "--input", input().toString(), "--output", out.toString(),
          "--recipe", recipe, "--shard-bytes", "65536"));
      args.addAll(List.of(JobTestSupport.LOCAL));
      jobs.add(ChildJvm.start("job-" + recipe, tmp.resolve("logs"), ChildJvm.testClasspath(), Map.of(), List.of("-Xmx512m"),
          "shardquant.cli.Main", args));
    }
    List<Integer> status = new ArrayList<>();
    List<String> logs = new ArrayList<>();
    for (ChildJvm j : jobs) {
      try (j) {
        status.add(j.waitFor(Duration.ofSeconds(180)));
        logs.add(j.logs());
      }
    }
    assertEquals(List.of(0, 2), status.stream().sorted().toList(), logs::toString);
    String refused = logs.get(status.indexOf(2));
    assertTrue(refused.contains("another shardquant job holds this output directory")
        || refused.contains("from another shardquant job"), refused);
    String winner = status.get(0) == 0 ? "8da4w" : "int8-weight-only";
    Run v = JobTestSupport.cli("verify", "--input", input().toString(), "--output", out.toString());
    assertEquals(0, v.status(), v::toString);
    assertTrue(v.out().contains("quantized with " + winner), v::toString);
    assertFalse(Files.exists(out.resolve(OutputClaim.NAME)));
  }

  @Test
  void verifyAndInspectNameFilesTheIndexDoesNotList() throws IOException {
    Path out = tmp.resolve("out");
    assertEquals(0, JobTestSupport.quantize(input(), out, "--recipe", "8da4w").status());
    Files.writeString(out.resolve("model-00009-of-00009.safetensors"), "another job's");
    writeClaim(out, "f00d", 999_999_999L, "");
    Run v = JobTestSupport.cli("verify", "--input", input().toString(), "--output", out.toString());
    assertEquals(3, v.status(), v::toString);
    assertTrue(v.out().contains("MISMATCH model-00009-of-00009.safetensors: in the output directory but not in its index"),
        v::toString);
    assertTrue(v.out().contains("MISMATCH " + OutputClaim.NAME + " (a job is running here"), v::toString);
    Run i = JobTestSupport.cli("inspect", out.toString());
    assertTrue(i.out().contains("not in the index: model-00009-of-00009.safetensors"), i::toString);
  }

  /** A verification failure names the tensor and the figure on stderr (exit 3, no _SUCCESS), not only "see the report". */
  @Test
  void aVerificationFailureNamesTheTensorOnStderr() throws IOException {
    float[] v = new float[64 * 64];
    for (int i = 0; i < v.length; i++) {
      v[i] = (i % 7 - 3) * 0.01f;
    }
    v[5] = -Float.MAX_VALUE; // its symmetric int4 code -8 dequantizes to 8/7.5 of it: past float32
    Path in = BadInputTest.write(tmp.resolve("f32.safetensors"), Map.of("model.layers.0.mlp.up_proj.weight",
        shardquant.kernels.tensor.Tensor.fromFloats(shardquant.kernels.dtype.DType.F32, new long[] {64, 64}, v)));
    Path out = tmp.resolve("out");
    Run r = JobTestSupport.quantize(in, out, "--recipe", "8da4w");
    assertEquals(3, r.status(), r::toString);
    assertTrue(r.err().contains("verification failed: tensor 'model.layers.0.mlp.up_proj.weight': 1 of 4096 dequantized"
        + " values are not finite"), r::toString);
    assertFalse(Files.exists(out.resolve("_SUCCESS")));
  }

  // ---- output that cannot be written ------------------------------------------------------------

  Run quantizeFaulty(Path out) {
    List<String> args = new ArrayList<>(List.of("--recipe", "8da4w"));
    args.addAll(List.of(FaultyFs.CONF));
    return JobTestSupport.quantize(input(), Path.of("faulty:" + out), args.toArray(new String[0]));
  }

  @Test
  void aDirectoryThatCannotBeWrittenIsRefusedUpFront() throws IOException {
    FaultyFs.readOnly = true;
    Path out = tmp.resolve("ro");
    String line = BadInputTest.assertRefused(quantizeFaulty(out), out, "Permission denied");
    assertTrue(line.contains("cannot create the output directory"), line);
    Files.createDirectories(out);
    line = BadInputTest.assertRefused(quantizeFaulty(out), out, "Permission denied");
    assertTrue(line.contains("cannot write into the output directory"), line);
  }

  @Test
  void tooLittleFreeSpaceIsRefusedBeforeTheJob() throws IOException {
    FaultyFs.reportedFree = 100_000;
    Path out = tmp.resolve("small");
    BadInputTest.assertRefused(quantizeFaulty(out), out, "the output needs 2.2 MiB", "but its file system has 97.7 KiB free");
  }

  /** The same on a real 1 MiB file system (tmpfs), where this machine lets a test mount one (root). */
  @Test
  void aRealSmallFileSystemIsRefusedBeforeTheJob() throws Exception {
    Path mount = Files.createDirectories(tmp.resolve("tmpfs"));
    Process p = new ProcessBuilder("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount.toString())
        .redirectErrorStream(true).start();
    String why = new String(p.getInputStream().readAllBytes()).strip();
    org.junit.jupiter.api.Assumptions.assumeTrue(p.waitFor() == 0,
        () -> "skipped: cannot mount a small tmpfs here (" + why + "); the simulated full device tests cover ENOSPC");
    try {
      Path out = mount.resolve("out");
      BadInputTest.assertRefused(JobTestSupport.quantize(input(), out, "--recipe", "8da4w"), out, "the output needs 2.2 MiB",
          "free; free some space or give another output directory");
    } finally {
      new ProcessBuilder("umount", mount.toString()).inheritIO().start().waitFor();
    }
  }

  @Test
  void aDeviceThatFillsUpMidWriteIsOneLineAndLeavesNoFile() throws IOException {
    FaultyFs.bytesUntilFull = 300_000;
    Path out = tmp.resolve("full");
    String line = BadInputTest.assertRefusedAfterProgress(quantizeFaulty(out), null, "no space left on the device",
        "model-00001-of-00001.safetensors");
    assertTrue(line.contains(out.toString()), line);
    List<String> left = JobTestSupport.listing(out);
    assertTrue(left.stream().noneMatch(n -> n.startsWith("model-") || n.contains(".tmp-") || n.equals("_SUCCESS")
        || n.equals(OutputClaim.NAME)), left::toString);
  }
}
