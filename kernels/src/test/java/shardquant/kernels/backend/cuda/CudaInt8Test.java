package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.backend.Backends;
import shardquant.kernels.backend.reference.ReferenceBackend;
import shardquant.kernels.backend.simd.SimdDifferential;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * The int8 kernel (src/main/cuda/int8_rowwise.cu, bf16 rows) against the reference, byte for byte, on
 * random shapes around the kernel's 32-lane warps and 256-thread blocks and on edge rows. The same cases
 * run against the CPU SIMD backend, so they are checked here; the CUDA run is skipped, with the probe's
 * reason, where CUDA is unavailable.
 */
class CudaInt8Test {
  record Case(String what, Tensor rows) {
    @Override
    public String toString() {
      return what + " " + rows;
    }
  }

  static Stream<Object[]> cases() {
    Random r = new Random(80);
    List<Case> cases = new ArrayList<>();
    for (int cols : new int[] {1, 2, 31, 32, 33, 255, 256, 257, 1000, 4098, 16387}) {
      cases.add(new Case("random", SimdDifferential.random(DType.BF16, 1 + r.nextInt(5), cols, r)));
      cases.add(new Case("edge rows", SimdDifferential.edgeRows(DType.BF16, cols, r)));
    }
    cases.add(new Case("many rows", SimdDifferential.random(DType.BF16, 300, 96, r)));
    cases.add(new Case("row slice", SimdDifferential.random(DType.BF16, 9, 100, r).rowSlice(2, 5)));
    cases.add(new Case("direct buffer", SimdDifferential.copy(SimdDifferential.random(DType.BF16, 4, 777, r), true)));
    List<Object[]> out = new ArrayList<>();
    for (Recipe recipe : new Recipe[] {Recipe.INT8_WEIGHT_ONLY, Recipe.INT8_DYNAMIC}) {
      cases.forEach(c -> out.add(new Object[] {QuantConfig.of(recipe), c}));
    }
    return out.stream();
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("cases")
  void cuda(QuantConfig c, Case k) {
    assumeTrue(CudaProbe.available(), () -> "CUDA unavailable: " + CudaProbe.problem());
    assertSameAsReference(Backends.forName("cuda"), "cuda", c, k);
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("cases")
  void cpuSimd(QuantConfig c, Case k) {
    assertSameAsReference(SimdDifferential.SIMD, "cpu-simd", c, k);
  }

  private static void assertSameAsReference(Backend b, String name, QuantConfig c, Case k) {
    assertEquals(name, b.nameFor(c.recipe()), c + " runs on " + name);
    QuantStats want = new QuantStats();
    QuantizedTensor ref = ReferenceBackend.INSTANCE.quantize(k.rows(), c, GlobalStats.NONE, want);
    QuantStats got = new QuantStats();
    QuantizedTensor q = b.quantize(k.rows(), c, GlobalStats.NONE, got);
    String where = name + " " + c + " " + k;
    assertEquals(ref.parts().keySet(), q.parts().keySet(), where);
    ref.parts().forEach((part, t) -> SimdDifferential.assertBytes(t, q.part(part), where + " part " + part));
    assertEquals(want, got, where + " stats");
  }
}
