package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.ChildJvm;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.commit.OutputDir;
import shardquant.kernels.quant.Recipe;

/**
 * The same files on every Java: a child JVM on the newest JDK 21 or later under /usr/lib/jvm (Temurin 25
 * on these machines), with the flags bin/shardquant gives that Java, quantizes the golden input with
 * each of the seven recipes, and every output file equals this JVM's (the build's Java 17) byte for byte,
 * with the SIMD kernels having run there (not the reference after a failed self-check).
 */
class NewerJdkTest {
  @TempDir
  Path tmp;

  @Test
  void everyRecipeWritesTheSameFilesOnTheNewerJdk() throws Exception {
    Optional<Path> java = ChildJvm.newerJdk();
    skipWithReason(java.isPresent(), "no JDK 21 or later under /usr/lib/jvm"
        + (System.getenv("CI") != null ? " on this CI machine" : "") + "; install one (Temurin 25) to compare");
    skipWithReason(Runtime.version().feature() < 21, "this JVM is Java " + Runtime.version().feature()
        + " already; the comparison runs from the build's Java 17");
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    List<String> args = new ArrayList<>();
    for (Recipe r : Recipe.values()) {
      if (!args.isEmpty()) {
        args.add("::");
      }
      args.addAll(List.of("quantize", "--input", input.toString(), "--output", tmp.resolve("newer").resolve(r.cliName())
          .toString(), "--recipe", r.cliName()));
      args.addAll(List.of(JobTestSupport.LOCAL));
    }
    String logs;
    int status;
    try (ChildJvm child = ChildJvm.startOn(java.orElseThrow(), ChildJvm.jvmFlags(java.orElseThrow()), "newer-jdk",
        tmp.resolve("logs"), ChildJvm.testClasspath(), Map.of(), List.of("-Xmx1g"), "shardquant.cli.RunEach", args)) {
      status = child.waitFor(Duration.ofMinutes(5));
      logs = child.logs();
    }
    assertEquals(0, status, logs);
    assertTrue(logs.contains("backend: cpu-simd on Java "), logs);
    assertFalse(logs.contains("self-check") || logs.contains("SIMD kernels off"), logs);
    for (Recipe r : Recipe.values()) {
      Path newer = tmp.resolve("newer").resolve(r.cliName());
      Run here = JobTestSupport.quantize(input, tmp.resolve("here").resolve(r.cliName()), "--recipe", r.cliName());
      assertEquals(0, here.status(), here::toString);
      SameOutput.assertSame(tmp.resolve("here").resolve(r.cliName()), newer);
      List<String> backends = new ArrayList<>();
      new ObjectMapper().readTree(newer.resolve(OutputDir.REPORT).toFile()).findValues("backend")
          .forEach(b -> backends.add(b.asText()));
      assertTrue(backends.contains("cpu-simd") && backends.stream().allMatch(b -> b.equals("cpu-simd") || b.equals("copy")),
          r.cliName() + " on " + java.get() + ": " + backends);
    }
  }

  /** Skips, saying why on stderr too (Surefire's summary shows only that a test was skipped). */
  private static void skipWithReason(boolean runnable, String reason) {
    if (!runnable) {
      System.err.println("NewerJdkTest skipped: " + reason);
    }
    assumeTrue(runnable, reason);
  }
}
