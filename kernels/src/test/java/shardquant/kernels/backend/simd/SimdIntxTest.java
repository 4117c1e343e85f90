package shardquant.kernels.backend.simd;

import java.io.IOException;
import java.util.Random;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;

/** {@link SimdIntx} (8da4w, intx-weight-only) against the reference, byte for byte with equal stats. */
class SimdIntxTest {
  private static final int[] GROUPS = {32, 64, 128, 256};

  /** 8da4w (4 bits) and intx-weight-only with every bit width, at every group size. */
  static Stream<QuantConfig> configs() {
    return IntStream.of(GROUPS).boxed().flatMap(g -> Stream.concat(
        Stream.of(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, g, 4)),
        IntStream.rangeClosed(1, 8).mapToObj(bits -> new QuantConfig(Recipe.INTX_WEIGHT_ONLY, g, bits))));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("configs")
  void randomShardsAndEdgeRows(QuantConfig c) {
    Random r = new Random(c.groupSize() * 31L + c.bits() + c.recipe().ordinal() * 1000L);
    int g = c.groupSize();
    for (DType d : SimdDifferential.FLOATS) {
      // {1, g} and {37, g}: rows of one group (K = g)
      for (int[] shape : new int[][] {{1, g}, {37, g}, {3, 3 * g}, {5, 2 * g + 256}}) {
        SimdDifferential.assertSameAsReference(SimdDifferential.random(d, shape[0], shape[1], r), c, "random");
      }
      for (int cols : new int[] {g, 4 * g}) {
        SimdDifferential.assertSameAsReference(SimdDifferential.edgeRows(d, cols, r), c, "edge rows");
      }
    }
  }

  @Test
  void veryLongRows() {
    Random r = new Random(5);
    for (DType d : SimdDifferential.FLOATS) {
      SimdDifferential.assertSameAsReference(SimdDifferential.random(d, 2, 16384, r),
          QuantConfig.of(Recipe.INT8_DYN_ACT_INT4_WEIGHT), "long rows");
      SimdDifferential.assertSameAsReference(SimdDifferential.edgeRows(d, 8192, r),
          new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 256, 8), "long edge rows");
    }
  }

  @Test
  void goldenWeights() throws IOException {
    for (SimdDifferential.Golden w : SimdDifferential.goldenWeights()) {
      for (int g : GROUPS) {
        if (w.w().cols() % g == 0) {
          SimdDifferential.assertSameAsReference(w.w(), new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, g, 4), w.name());
          SimdDifferential.assertSameAsReference(w.w(), new QuantConfig(Recipe.INTX_WEIGHT_ONLY, g, 1 + g % 7), w.name());
        }
      }
    }
  }

  @Test
  void rowSliceViews() {
    Tensor whole = SimdDifferential.random(DType.BF16, 9, 128, new Random(8));
    SimdDifferential.assertSameAsReference(whole.rowSlice(4, 7), QuantConfig.of(Recipe.INT8_DYN_ACT_INT4_WEIGHT), "row slice");
  }

  @Test
  void refusesWhatTheReferenceRefuses() {
    QuantConfig c = QuantConfig.of(Recipe.INTX_WEIGHT_ONLY);
    Tensor w = SimdDifferential.random(DType.F16, 3, 64, new Random(2));
    w.setFloat(2 * 64 + 40, Float.NaN);
    SimdDifferential.assertSameRefusal(w, c);
    Tensor inf = SimdDifferential.random(DType.F32, 2, 64, new Random(2));
    inf.setFloat(33, Float.NEGATIVE_INFINITY);
    inf.setFloat(70, Float.NaN);
    SimdDifferential.assertSameRefusal(inf, c);
    SimdDifferential.assertSameRefusal(SimdDifferential.random(DType.BF16, 2, 48, new Random(2)), c);
    SimdDifferential.assertSameRefusal(Tensor.allocate(DType.BF16, 0, 64), c);
  }

  /**
   * The absmax is an int max of the magnitudes' bits: a NaN with its sign bit set must still be refused,
   * in groups and in whole rows longer than a chunk (int8).
   */
  @Test
  void refusesANaNWithItsSignBitSet() {
    for (Recipe recipe : new Recipe[] {Recipe.INTX_WEIGHT_ONLY, Recipe.INT8_WEIGHT_ONLY}) {
      QuantConfig c = QuantConfig.of(recipe);
      Tensor bf16 = SimdDifferential.random(DType.BF16, 3, 512, new Random(3));
      bf16.bytes().putShort(2 * (2 * 512 + 40), (short) 0xffc0);
      SimdDifferential.assertSameRefusal(bf16, c);
      Tensor f32 = SimdDifferential.random(DType.F32, 3, 512, new Random(3));
      f32.bytes().putInt(4 * (512 + 300), 0xffc00001);
      SimdDifferential.assertSameRefusal(f32, c);
    }
  }
}
