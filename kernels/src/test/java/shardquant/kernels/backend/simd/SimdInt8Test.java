package shardquant.kernels.backend.simd;

import java.io.IOException;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;

/** {@link SimdInt8} (int8-weight-only, int8-dynamic) against the reference, byte for byte with equal stats. */
class SimdInt8Test {
  static Stream<QuantConfig> configs() {
    return Stream.of(QuantConfig.of(Recipe.INT8_WEIGHT_ONLY), QuantConfig.of(Recipe.INT8_DYNAMIC));
  }

  /** Any K: around the 8-lane width, so every tail length runs, and very long rows. */
  @ParameterizedTest(name = "{0}")
  @MethodSource("configs")
  void randomShardsAndEdgeRows(QuantConfig c) {
    Random r = new Random(c.recipe().ordinal());
    for (DType d : SimdDifferential.FLOATS) {
      for (int cols : new int[] {1, 2, 7, 8, 9, 13, 15, 16, 17, 63, 64, 65, 257, 4098}) {
        SimdDifferential.assertSameAsReference(SimdDifferential.random(d, 1, cols, r), c, "random, 1 row");
        SimdDifferential.assertSameAsReference(SimdDifferential.random(d, 3, cols, r), c, "random, 3 rows");
        SimdDifferential.assertSameAsReference(SimdDifferential.edgeRows(d, cols, r), c, "edge rows");
      }
      SimdDifferential.assertSameAsReference(SimdDifferential.random(d, 2, 16384 + 3, r), c, "long rows");
      SimdDifferential.assertSameAsReference(SimdDifferential.edgeRows(d, 16384, r), c, "long edge rows");
    }
  }

  @Test
  void goldenWeights() throws IOException {
    for (SimdDifferential.Golden w : SimdDifferential.goldenWeights()) {
      SimdDifferential.assertSameAsReference(w.w(), QuantConfig.of(Recipe.INT8_WEIGHT_ONLY), w.name());
    }
  }

  @Test
  void rowSliceViews() {
    Tensor whole = SimdDifferential.random(DType.F16, 9, 100, new Random(8));
    SimdDifferential.assertSameAsReference(whole.rowSlice(2, 5), QuantConfig.of(Recipe.INT8_DYNAMIC), "row slice");
  }

  @Test
  void refusesWhatTheReferenceRefuses() {
    QuantConfig c = QuantConfig.of(Recipe.INT8_WEIGHT_ONLY);
    Tensor w = SimdDifferential.random(DType.BF16, 3, 21, new Random(2));
    w.setFloat(2 * 21 + 19, Float.POSITIVE_INFINITY);
    SimdDifferential.assertSameRefusal(w, c);
    SimdDifferential.assertSameRefusal(Tensor.allocate(DType.F32, 0, 16), c);
  }
}
