package shardquant.kernels.backend.cuda;

import java.io.IOException;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.backend.cuda.CudaDifferential.Target;
import shardquant.kernels.backend.simd.SimdDifferential;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;

/**
 * {@code int8_rowwise} (src/main/cuda/int8_rowwise.cu) through {@link CudaInt8} against the reference,
 * byte for byte with equal verification sums: shapes around its 32-lane warps and 8-row blocks, every
 * input dtype, edge rows, the golden weights, chunked uploads, and NaN refused with the reference's words.
 * Each runs on the emulator and on the GPU (skipped with the probe's reason where there is none).
 */
class CudaInt8Test {
  private static final QuantConfig[] CONFIGS = {QuantConfig.of(Recipe.INT8_WEIGHT_ONLY), QuantConfig.of(Recipe.INT8_DYNAMIC)};

  static java.util.List<Target> targets() {
    return CudaDifferential.targets();
  }

  @ParameterizedTest
  @MethodSource("targets")
  void randomShapesEveryDtype(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(80);
    int[][] shapes = {{1, 1}, {1, 31}, {3, 32}, {9, 33}, {8, 255}, {17, 257}, {2, 1000}, {1, 4098}};
    for (DType d : SimdDifferential.FLOATS) {
      for (int[] s : shapes) {
        for (QuantConfig c : CONFIGS) {
          CudaDifferential.assertSameAsReference(cuda, SimdDifferential.random(d, s[0], s[1], r), c, d.torchName());
        }
      }
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void edgeRows(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(81);
    for (DType d : SimdDifferential.FLOATS) {
      for (int cols : new int[] {7, 64, 300}) {
        CudaDifferential.assertSameAsReference(cuda, SimdDifferential.edgeRows(d, cols, r), CONFIGS[0], "edge rows");
      }
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void directBufferAndRowSlice(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(82);
    CudaDifferential.assertSameAsReference(cuda, SimdDifferential.copy(SimdDifferential.random(DType.BF16, 4, 777, r), true),
        CONFIGS[0], "direct");
    CudaDifferential.assertSameAsReference(cuda, SimdDifferential.random(DType.BF16, 9, 100, r).rowSlice(2, 5), CONFIGS[1], "slice");
  }

  /** Rows too long for the kernel's shared-memory copy (32,800 bytes, over its 31 KiB): the later passes read global memory again. */
  @ParameterizedTest
  @MethodSource("targets")
  void rowsTooLongForSharedMemory(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(85);
    CudaDifferential.assertSameAsReference(cuda, SimdDifferential.random(DType.F32, 2, 8200, r), CONFIGS[0], "f32 8200");
    CudaDifferential.assertSameAsReference(cuda, SimdDifferential.random(DType.BF16, 1, 16400, r), CONFIGS[1], "bf16 16400");
  }

  @org.junit.jupiter.api.Test
  void manySmallChunksGiveTheSameBytes() {
    Random r = new Random(84);
    for (DType d : SimdDifferential.FLOATS) {
      // 4 KiB chunks: 1 to 4 rows each, so staging buffers are reused many times
      CudaDifferential.assertSameAsReference(CudaDifferential.emulatedSmallChunks(), SimdDifferential.random(d, 37, 1000, r),
          CONFIGS[0], "4 KiB chunks");
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void goldenWeights(Target t) throws IOException {
    CudaBackend cuda = t.backend();
    for (SimdDifferential.Golden g : SimdDifferential.goldenWeights()) {
      CudaDifferential.assertSameAsReference(cuda, t.sample(g.w()), CONFIGS[0], g.name());
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void nonFiniteInputIsRefusedAsTheReferenceDoes(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(83);
    for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
      Tensor rows = SimdDifferential.random(DType.BF16, 5, 70, r);
      rows.setFloat(3 * 70 + 69, bad);
      CudaDifferential.assertSameRefusal(cuda, rows, CONFIGS[0]);
    }
  }
}
