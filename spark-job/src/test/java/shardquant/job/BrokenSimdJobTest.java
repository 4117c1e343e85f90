package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.commit.OutputDir;
import shardquant.kernels.select.Backends;
import shardquant.kernels.select.BackendsLog;
import shardquant.kernels.backend.BrokenBackend;
import shardquant.kernels.backend.BrokenBackend.Fault;
import shardquant.kernels.backend.simd.SimdBackend;
import shardquant.kernels.quant.Recipe;

/**
 * No JVM makes a job fail because the fast path is broken: with the SIMD kernels broken on purpose
 * (the NoSuchMethodError the Java 17 kernels threw on Java 21 and 25, or one wrong byte), the job still
 * writes the reference's bytes, its report names the reference, and one warning names the Java version
 * and the reason. Local-mode executors share this JVM, so the broken backend installed here is theirs.
 */
class BrokenSimdJobTest {
  private BackendsLog log;

  @TempDir
  Path tmp;

  @BeforeEach
  void listen() {
    log = new BackendsLog();
  }

  @AfterEach
  void restore() {
    log.close();
    Backends.installCpu(null); // the next job chooses (and checks) the real SIMD backend again
  }

  @Test
  void aMissingVectorApiMethodCostsSpeedNotTheJob() throws IOException {
    Backends.installCpu(BrokenBackend.simd(Fault.NO_SUCH_METHOD, Recipe.INT4_TILE_PACKED, Recipe.values()));
    assertWritesTheReferenceBytes("int4-tile-packed", "java.lang.NoSuchMethodError");
  }

  @Test
  void aWrongByteCostsSpeedNotTheCheckpoint() throws IOException {
    Backends.installCpu(BrokenBackend.simd(Fault.WRONG_BYTE, Recipe.INT8_WEIGHT_ONLY));
    assertWritesTheReferenceBytes("int8-weight-only", "differs");
    assertEquals("cpu-simd", Backends.cpu().nameFor(Recipe.INT8_DYNAMIC), "only the broken recipe is off");
  }

  @Test
  void aKernelThatThrowsMidJobCostsSpeedAndIsReportedAsTheReference() throws IOException {
    // passes the self-check (its samples carry no origin), throws on every shard of the job (they do)
    Backends.installCpu(new BrokenBackend(new SimdBackend(), Fault.NO_SUCH_METHOD, EnumSet.of(Recipe.INT8_WEIGHT_ONLY),
        t -> t.origin() != null));
    // every tensor names the reference, also those whose task started before the kernel went off
    assertWritesTheReferenceBytes("int8-weight-only", "java.lang.NoSuchMethodError");
  }

  private void assertWritesTheReferenceBytes(String recipe, String reason) throws IOException {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Run broken = JobTestSupport.quantize(input, tmp.resolve("broken"), "--recipe", recipe);
    assertEquals(0, broken.status(), broken::toString);
    Run reference = JobTestSupport.quantize(input, tmp.resolve("reference"), "--recipe", recipe, "--backend", "reference");
    assertEquals(0, reference.status(), reference::toString);
    SameOutput.assertSame(tmp.resolve("reference"), tmp.resolve("broken"));
    List<String> backends = new ArrayList<>();
    new ObjectMapper().readTree(tmp.resolve("broken").resolve(OutputDir.REPORT).toFile()).findValues("backend")
        .forEach(b -> backends.add(b.asText()));
    assertTrue(backends.contains("reference") && backends.stream().allMatch(b -> b.equals("reference") || b.equals("copy")),
        backends.toString());
    List<String> warnings = log.warnings();
    assertEquals(1, warnings.size(), warnings.toString());
    String line = warnings.get(0);
    assertTrue(line.contains("Java " + System.getProperty("java.version")) && line.contains(recipe) && line.contains(reason)
        && line.lines().count() == 1, line);
  }
}
