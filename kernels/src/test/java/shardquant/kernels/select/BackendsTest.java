package shardquant.kernels.select;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.EnumSet;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.backend.BrokenBackend.Fault;
import shardquant.kernels.backend.BrokenBackend;
import shardquant.kernels.backend.simd.SimdBackend;
import shardquant.kernels.backend.simd.SimdDifferential;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * The CPU backend is trusted only after its self-check on this JVM: a SIMD path that throws (the
 * NoSuchMethodError Java 21+ gave the Java 17 kernels) or writes a wrong byte sends its recipes to the
 * reference with one warning naming the Java version, and a kernel that throws later, mid-job, does too
 * for that shard and after.
 */
class BackendsTest {
  private BackendsLog log;

  @BeforeEach
  void listen() {
    log = new BackendsLog();
  }

  @AfterEach
  void restore() {
    log.close();
    Backends.installCpu(null); // the next cpu() chooses (and checks) the real SIMD backend again
  }

  private List<String> warnings() {
    return log.warnings();
  }

  @Test
  void theSimdKernelsPassTheirSelfCheckOnThisJvm() {
    Backends.installCpu(new SimdBackend());
    Backend cpu = Backends.cpu();
    for (Recipe r : Recipe.values()) {
      assertEquals("cpu-simd", cpu.nameFor(r), r.cliName());
    }
    assertEquals(null, Backends.simdProblem());
    assertEquals(List.of(), warnings());
  }

  @Test
  void aMissingVectorApiMethodSendsEveryRecipeToTheReference() {
    Backends.installCpu(BrokenBackend.simd(Fault.NO_SUCH_METHOD, Recipe.INT4_TILE_PACKED, Recipe.values()));
    Backend cpu = Backends.cpu();
    assertSame(Backends.reference(), cpu);
    assertSame(cpu, Backends.cpu());
    String problem = Backends.simdProblem();
    assertNotNull(problem);
    assertTrue(problem.contains("java.lang.NoSuchMethodError") && problem.contains("fromByteBuffer"), problem);
    assertEquals(1, warnings().size(), log.toString());
    String line = warnings().get(0);
    assertTrue(line.contains("Java " + System.getProperty("java.version")) && line.contains("NoSuchMethodError")
        && !line.contains("\n"), line);
  }

  @Test
  void aJobChecksItsOwnRecipesFirstAndAnyOtherBeforeItsFirstShard() {
    Backends.installCpu(BrokenBackend.simd(Fault.WRONG_BYTE, Recipe.INT8_DYNAMIC));
    Backend cpu = Backends.cpu(List.of(Recipe.INT8_WEIGHT_ONLY));
    assertEquals(List.of(), warnings(), "only the job's recipe is checked up front, and it passes");
    assertEquals("cpu-simd", cpu.nameFor(Recipe.INT8_WEIGHT_ONLY));
    assertSame(cpu, Backends.cpu(), "one CPU backend per JVM");
    // the broken recipe's first use checks it before its first shard runs: that shard is the reference's
    Tensor w = SimdDifferential.random(DType.BF16, 3, 64, new Random(2));
    assertSameAsReference(cpu, w, QuantConfig.of(Recipe.INT8_DYNAMIC));
    assertEquals("reference", cpu.nameFor(Recipe.INT8_DYNAMIC));
    assertEquals("cpu-simd", cpu.nameFor(Recipe.INT8_WEIGHT_ONLY));
    assertEquals(1, warnings().size(), log.toString());
    String line = warnings().get(0);
    assertTrue(line.contains("Java " + System.getProperty("java.version")) && line.contains("int8-dynamic")
        && line.contains("differs") && !line.contains("int8-weight-only"), line);
  }

  @Test
  void aWrongByteSendsThatRecipeToTheReferenceAndNoOther() {
    Backends.installCpu(BrokenBackend.simd(Fault.WRONG_BYTE, Recipe.INT8_WEIGHT_ONLY));
    Backend cpu = Backends.cpu();
    assertEquals("reference", cpu.nameFor(Recipe.INT8_WEIGHT_ONLY));
    assertEquals("cpu-simd", cpu.nameFor(Recipe.INT8_DYNAMIC));
    assertEquals(1, warnings().size(), log.toString());
    String line = warnings().get(0);
    assertTrue(line.contains("Java " + System.getProperty("java.version")) && line.contains("int8-weight-only")
        && line.contains("differs") && !line.contains("int8-dynamic"), line);
    // what it quantizes now is the reference's
    Tensor w = SimdDifferential.random(DType.BF16, 3, 64, new Random(1));
    assertSameAsReference(cpu, w, QuantConfig.of(Recipe.INT8_WEIGHT_ONLY));
  }

  @Test
  void aKernelThatThrowsMidJobFallsBackForThatShardAndAfter() {
    // passes the self-check (its shards have at most 64 rows), throws on bigger ones
    Backends.installCpu(new BrokenBackend(new SimdBackend(), Fault.NO_SUCH_METHOD,
        EnumSet.of(Recipe.INTX_WEIGHT_ONLY), t -> t.rows() > 64));
    Backend cpu = Backends.cpu();
    QuantConfig c = QuantConfig.of(Recipe.INTX_WEIGHT_ONLY);
    assertEquals("cpu-simd", cpu.nameFor(Recipe.INTX_WEIGHT_ONLY));
    assertEquals(List.of(), warnings());
    assertSameAsReference(cpu, SimdDifferential.random(DType.BF16, 65, 64, new Random(2)), c); // stats counted once
    assertEquals("reference", cpu.nameFor(Recipe.INTX_WEIGHT_ONLY));
    assertSameAsReference(cpu, SimdDifferential.random(DType.F16, 70, 96, new Random(3)), c);
    assertEquals(1, warnings().size(), log.toString());
    assertTrue(warnings().get(0).contains("intx-weight-only") && warnings().get(0).contains("NoSuchMethodError"), log.toString());
  }

  @Test
  void theReferencesOwnRefusalIsTheShardsError() {
    Backends.installCpu(new SimdBackend());
    Backend cpu = Backends.cpu();
    Tensor w = SimdDifferential.random(DType.BF16, 2, 64, new Random(4));
    w.setFloat(70, Float.NaN);
    QuantConfig c = QuantConfig.of(Recipe.INT8_WEIGHT_ONLY);
    IllegalArgumentException want = assertThrows(IllegalArgumentException.class,
        () -> Backends.reference().quantize(w, c, GlobalStats.NONE, new QuantStats()));
    QuantStats stats = new QuantStats();
    IllegalArgumentException got = assertThrows(IllegalArgumentException.class, () -> cpu.quantize(w, c, GlobalStats.NONE, stats));
    assertEquals(want.getMessage(), got.getMessage());
    assertEquals(new QuantStats(), stats);
    assertEquals("cpu-simd", cpu.nameFor(Recipe.INT8_WEIGHT_ONLY), "a refusal is not a broken kernel");
    // a dtype the recipe refuses: the SIMD kernel's message (the recipe's), though the reference fails
    // otherwise, later, after adding some sums
    Tensor f32 = SimdDifferential.random(DType.F32, 16, 256, new Random(5));
    QuantConfig int4 = QuantConfig.of(Recipe.INT4_TILE_PACKED);
    QuantStats untouched = new QuantStats();
    IllegalArgumentException refusal = assertThrows(IllegalArgumentException.class,
        () -> cpu.quantize(f32, int4, GlobalStats.NONE, untouched));
    assertEquals(int4.recipe().kernel().refusal(16, 256, DType.F32, int4), refusal.getMessage());
    assertEquals(new QuantStats(), untouched);
    assertEquals("cpu-simd", cpu.nameFor(Recipe.INT4_TILE_PACKED));
    assertEquals(List.of(), warnings());
  }

  private static void assertSameAsReference(Backend b, Tensor w, QuantConfig c) {
    QuantStats wantStats = new QuantStats();
    QuantizedTensor want = Backends.reference().quantize(w, c, GlobalStats.NONE, wantStats);
    QuantStats gotStats = new QuantStats();
    QuantizedTensor got = b.quantize(w, c, GlobalStats.NONE, gotStats);
    assertEquals(want.parts().keySet(), got.parts().keySet());
    want.parts().forEach((name, t) -> assertEquals(-1, t.bytes().mismatch(got.parts().get(name).bytes()), name));
    assertEquals(wantStats, gotStats);
  }
}
