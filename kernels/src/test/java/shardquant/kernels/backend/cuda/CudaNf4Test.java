package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.backend.cuda.CudaDifferential.Target;
import shardquant.kernels.backend.reference.ReferenceBackend;
import shardquant.kernels.backend.simd.SimdDifferential;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.Nf4Ref;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * nf4 (src/main/cuda/nf4.cu) through {@link CudaNf4} against the reference, both passes: the block
 * absmax values float for float ({@link Nf4Ref#blockAbsmax}), then, with the scaler mean the driver
 * computes from them ({@link Nf4Ref#scalerMean}) or a foreign one, every part's bytes and equal
 * verification sums. Shapes whose blocks and groups cross row ends, every input dtype, edge rows
 * (zero blocks, overflowing f16 factors), the golden weights, chunked uploads, and NaN / infinity
 * refused with the reference's words. Each runs on the emulator and on the GPU (skipped without one).
 */
class CudaNf4Test {
  private static final QuantConfig NF4 = QuantConfig.of(Recipe.NF4);
  private static final int G = Nf4Ref.SHARD_ALIGNMENT;

  static List<Target> targets() {
    return CudaDifferential.targets();
  }

  // ---- assertions

  /** The first pass on the device gives the reference's absmax values. */
  private static void assertSameAbsmax(CudaBackend cuda, Tensor w, String what) {
    float[] want = Nf4Ref.blockAbsmax(w);
    long before = cuda.cpuAnswers();
    float[] got = cuda.firstPass(NF4, w);
    CudaDifferential.assertRanOnDevice(cuda, before, what + " block absmax");
    assertArrayEquals(want, got, what + " block absmax on " + cuda);
    CudaDifferential.assertNoLeaks(cuda);
  }

  /** The second pass with scaler mean {@code mean}: the reference's parts and stats, computed on the device. */
  private static void assertSameAsReference(CudaBackend cuda, Tensor w, float mean, String what) {
    assertEquals("cuda", cuda.nameFor(Recipe.NF4));
    GlobalStats global = new GlobalStats(mean);
    String where = w + " " + what + " mean " + mean + " on " + cuda;
    QuantStats want = new QuantStats();
    QuantizedTensor ref = ReferenceBackend.INSTANCE.quantize(w, NF4, global, want);
    long before = cuda.cpuAnswers();
    QuantStats got = new QuantStats();
    QuantizedTensor q = cuda.quantize(w, NF4, global, got);
    CudaDifferential.assertRanOnDevice(cuda, before, w, want, where);
    assertEquals(List.copyOf(ref.parts().keySet()), List.copyOf(q.parts().keySet()), where);
    ref.parts().forEach((name, t) -> SimdDifferential.assertBytes(t, q.part(name), where + " part " + name));
    assertEquals(want, got, where + " stats");
    assertEquals(want.nonFinite(), got.nonFinite(), where + " non-finite count");
    CudaDifferential.assertNoLeaks(cuda);
  }

  /** Both passes as the job runs them on one shard: device absmax, driver mean, device quantize. */
  private static void assertWholeTensor(CudaBackend cuda, Tensor w, String what) {
    assertSameAbsmax(cuda, w, what);
    float mean = Nf4Ref.scalerMean(w.dtype(), cuda.firstPass(NF4, w));
    assertEquals(Nf4Ref.scalerMean(w.dtype(), Nf4Ref.blockAbsmax(w)), mean, what);
    assertSameAsReference(cuda, w, mean, what);
  }

  /**
   * As {@link #assertWholeTensor}, or where the absmax values sum past float32's range (the driver
   * refuses the tensor: max-finite weights), the first pass and then a foreign mean.
   */
  private static void assertBothPasses(CudaBackend cuda, Tensor w, String what) {
    boolean hasMean;
    try {
      Nf4Ref.scalerMean(w.dtype(), Nf4Ref.blockAbsmax(w));
      hasMean = true;
    } catch (IllegalArgumentException e) {
      hasMean = false;
    }
    if (hasMean) {
      assertWholeTensor(cuda, w, what);
    } else {
      assertSameAbsmax(cuda, w, what);
      assertSameAsReference(cuda, w, w.dtype().round(0.25f), what + " (no mean: absmax values sum past float32)");
    }
  }

  // ---- inputs

  /** Gaussian weights with 0.5% outliers; the first rows (as many as fit) are SimdNf4Test's edge rows. */
  private static Tensor weights(DType d, int rows, int cols, long seed) {
    Random r = new Random(seed);
    float[] v = new float[rows * cols];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) (r.nextGaussian() * 0.02 * (r.nextInt(200) == 0 ? 10 : 1));
    }
    float[][] edges = {{0f}, {0.037f}, {-0.5f, -0.01f}, {1e-8f, -1e-8f}, {1e4f, -1e4f}, {40f * 0.02f, -40f * 0.02f}};
    for (int e = 0; e < edges.length && e + 1 < rows; e++) {
      for (int j = 0; j < cols; j++) {
        float[] c = edges[e];
        v[(e + 1) * cols + j] = c.length == 1 ? c[0] : c[0] + (c[1] - c[0]) * r.nextFloat();
      }
    }
    return Tensor.fromFloats(d, new long[] {rows, cols}, v);
  }

  /**
   * SimdDifferential's 15 edge rows of {@code cols} elements, repeated (and the last pass cut) to
   * {@code rows} rows: zero blocks, constants, signed zeros, subnormals, max-finite values.
   */
  private static Tensor edgeRows(DType d, int rows, int cols, Random r) {
    Tensor edges = SimdDifferential.edgeRows(d, cols, r);
    float[] e = edges.toFloats();
    float[] v = new float[rows * cols];
    for (int i = 0; i < rows; i++) {
      System.arraycopy(e, (i % SimdDifferential.EDGE_KINDS) * cols, v, i * cols, cols);
    }
    return Tensor.fromFloats(d, new long[] {rows, cols}, v);
  }

  /** Shapes of whole groups; blocks (64) and groups (16384) cross row ends in several. */
  private static final int[][] SHAPES = {{2, G}, {256, 64}, {512, 96}, {4, 12288}, {2048, 8}, {16, 3072}, {1, G}};

  // ---- tests

  @ParameterizedTest
  @MethodSource("targets")
  void randomShapesEveryDtype(Target t) {
    CudaBackend cuda = t.backend();
    for (DType d : SimdDifferential.FLOATS) {
      for (int[] s : SHAPES) {
        Tensor w = weights(d, s[0], s[1], Arrays.hashCode(s) + d.ordinal());
        String what = d + Arrays.toString(s);
        assertWholeTensor(cuda, w, what);
        // a row shard quantized with the whole tensor's mean, which is some other value here
        assertSameAsReference(cuda, w, s[0] % 2 == 0 ? d.round(0.0123f) : 0f, what + " foreign mean");
      }
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void absmaxOfBlocksThatAreNotWholeGroups(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(90);
    for (DType d : SimdDifferential.FLOATS) {
      for (int[] s : new int[][] {{1, 64}, {2, 192}, {3, 7 * 64}, {64, 1}, {64, 7}, {8, 72}, {33, 64}}) {
        assertSameAbsmax(cuda, SimdDifferential.random(d, s[0], s[1], r), d + Arrays.toString(s));
      }
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void edgeRows(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(91);
    for (DType d : SimdDifferential.FLOATS) {
      // every edge kind in one block (rows of 64) or spread over blocks (rows of 1024), one group each
      assertBothPasses(cuda, edgeRows(d, 256, 64, r), d + " edge rows of 64");
      assertBothPasses(cuda, edgeRows(d, 16, 1024, r), d + " edge rows of 1024");
      assertSameAsReference(cuda, edgeRows(d, 32, 1024, r), d.round(0.5f), d + " edge rows, foreign mean");
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void constantZeroAndTinyTensors(Target t) {
    CudaBackend cuda = t.backend();
    for (DType d : SimdDifferential.FLOATS) {
      for (float value : new float[] {0f, -0f, 0.037f, -3f, 1e-8f, 6e-8f}) {
        float[] v = new float[G];
        Arrays.fill(v, value);
        assertWholeTensor(cuda, Tensor.fromFloats(d, new long[] {8, G / 8}, v), d + " all " + value);
      }
    }
  }

  /** One weight at the dtype's largest finite value: a huge mean, and in f16 an overflowing factor (NaN scalers). */
  @ParameterizedTest
  @MethodSource("targets")
  void oneMaxFiniteWeight(Target t) {
    CudaBackend cuda = t.backend();
    for (DType d : SimdDifferential.FLOATS) {
      float max = switch (d) {
        case F32 -> Float.MAX_VALUE;
        case BF16 -> Float.intBitsToFloat(0x7f7f0000);
        default -> 65504f;
      };
      float[] v = weights(DType.F32, 4, G / 2, 11).toFloats();
      v[777] = -max;
      assertWholeTensor(cuda, Tensor.fromFloats(d, new long[] {4, G / 2}, v), d + " with -max");
      v[777] = 0;
      v[5] = max;
      v[G + 5] = max; // the absmax values sum past float32's range in f32: no mean, so a foreign one
      Tensor w = Tensor.fromFloats(d, new long[] {4, G / 2}, v);
      assertSameAbsmax(cuda, w, d + " with max");
      assertSameAsReference(cuda, w, d.round(0.25f), d + " with max");
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void directBufferAndRowSlice(Target t) {
    CudaBackend cuda = t.backend();
    Tensor w = weights(DType.BF16, 12, 4096, 92);
    assertWholeTensor(cuda, SimdDifferential.copy(w, true), "direct");
    assertWholeTensor(cuda, w.rowSlice(4, 12), "slice");
  }

  @Test
  void manySmallChunksGiveTheSameBytes() {
    CudaBackend cuda = CudaDifferential.emulatedSmallChunks();
    for (DType d : SimdDifferential.FLOATS) {
      // 4 KiB chunks: the absmax pass a row or a few per chunk, the quantize pass a row unit (whole groups) each
      assertWholeTensor(cuda, weights(d, 8, 12288, 93 + d.ordinal()), d + " 4 KiB chunks, groups across rows");
      assertSameAbsmax(cuda, SimdDifferential.random(d, 40, 72, new Random(97)), d + " 4 KiB chunks, blocks across rows");
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void goldenWeights(Target t) throws IOException {
    CudaBackend cuda = t.backend();
    int quantized = 0;
    java.util.Set<java.nio.ByteBuffer> seen = new java.util.HashSet<>();
    for (SimdDifferential.Golden g : SimdDifferential.goldenWeights()) {
      if (!seen.add(g.w().bytes())) {
        continue; // several golden cases share one weight
      }
      Tensor w = sample(t, g.w());
      if (Recipe.NF4.kernel().refusal(w.rows(), w.cols(), w.dtype(), NF4) == null) {
        assertWholeTensor(cuda, w, g.name());
        quantized++;
      } else if (w.numel() % Nf4Ref.BLOCK_SIZE == 0) {
        assertSameAbsmax(cuda, w, g.name());
      }
    }
    assertTrue(quantized > 10, "quantized " + quantized + " golden weights");
  }

  /**
   * {@code w} on the GPU; on the emulator its first rows, one group where the shape allows
   * ({@link Target#sample} caps the rows, up to 8 groups of nf4 for the golden weights).
   */
  private static Tensor sample(Target t, Tensor w) {
    Tensor s = t.sample(w);
    long unit = Recipe.NF4.kernel().rowAlignment(s.cols(), NF4);
    long rows = Math.max(unit, (long) G / (unit * s.cols()) * unit);
    return t == Target.GPU || s.rows() <= rows ? s : s.rowSlice(0, rows);
  }

  /** The nf4 golden cases with torchao's own scaler mean (whole tensors on the GPU, their first rows emulated). */
  @ParameterizedTest
  @MethodSource("targets")
  void goldenNf4CasesWithTorchaosMean(Target t) throws IOException {
    CudaBackend cuda = t.backend();
    int cases = 0;
    try (Stream<Path> files = Files.list(GoldenFiles.dir("torchao-0.19"))) {
      for (Path p : files.filter(f -> f.getFileName().toString().startsWith("nf4_")).sorted().toList()) {
        try (SafetensorsFile golden = SafetensorsFile.open(p)) {
          Tensor w = golden.read("w");
          float mean = golden.read("scaler_mean").getFloat(0);
          String what = p.getFileName().toString();
          if (t == Target.GPU) {
            assertEquals(mean, Nf4Ref.scalerMean(w.dtype(), cuda.firstPass(NF4, w)), what);
          }
          assertSameAsReference(cuda, sample(t, w), mean, what);
          cases++;
        }
      }
    }
    assertEquals(6, cases);
  }

  @ParameterizedTest
  @MethodSource("targets")
  void nonFiniteInputIsRefusedAsTheReferenceDoes(Target t) {
    CudaBackend cuda = t.backend();
    for (DType d : SimdDifferential.FLOATS) {
      for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
        float[] v = weights(DType.F32, 2, G / 2, 3).toFloats();
        v[G / 2 + 100] = bad; // in the second row, the group's second half
        Tensor w = Tensor.fromFloats(d, new long[] {2, G / 2}, v);
        assertEquals(assertThrows(IllegalArgumentException.class, () -> Nf4Ref.blockAbsmax(w)).getMessage(),
            assertThrows(IllegalArgumentException.class, () -> cuda.firstPass(NF4, w)).getMessage());
        CudaDifferential.assertNoLeaks(cuda);
        assertSameRefusal(cuda, w, new GlobalStats(d.round(0.01f)));
      }
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void argumentsTheKernelsDoNotTakeGetTheReferencesAnswer(Target t) {
    CudaBackend cuda = t.backend();
    Tensor w = weights(DType.BF16, 2, 64 * 3, 1);
    assertSameAbsmax(cuda, w, "blocks but not groups");
    assertArrayEquals(Nf4Ref.blockAbsmax(w), cuda.firstPass(NF4, w.reshape(2 * 64 * 3)), "1-D");
    Tensor odd = Tensor.fromFloats(DType.BF16, new long[] {1, 100}, new float[100]);
    assertEquals(assertThrows(IllegalArgumentException.class, () -> Nf4Ref.blockAbsmax(odd)).getMessage(),
        assertThrows(IllegalArgumentException.class, () -> cuda.firstPass(NF4, odd)).getMessage());
    Tensor i8 = Tensor.allocate(DType.I8, 1, 64);
    assertEquals(assertThrows(IllegalArgumentException.class, () -> Nf4Ref.blockAbsmax(i8)).getMessage(),
        assertThrows(IllegalArgumentException.class, () -> cuda.firstPass(NF4, i8)).getMessage());
    assertSameRefusal(cuda, w, new GlobalStats(0.01f)); // not whole groups
    Tensor group = weights(DType.BF16, 4, G / 4, 2);
    assertSameRefusal(cuda, group, GlobalStats.NONE); // no first pass
    assertSameRefusal(cuda, group, new GlobalStats(0.0123f)); // a mean that is no bf16 value
    assertSameRefusal(cuda, group, new GlobalStats(Float.POSITIVE_INFINITY));
  }

  /** The CUDA backend refuses as the reference does and leaves the stats alone. */
  private static void assertSameRefusal(CudaBackend cuda, Tensor w, GlobalStats global) {
    IllegalArgumentException want = assertThrows(IllegalArgumentException.class,
        () -> ReferenceBackend.INSTANCE.quantize(w, NF4, global, new QuantStats()));
    QuantStats stats = new QuantStats();
    IllegalArgumentException got = assertThrows(IllegalArgumentException.class,
        () -> cuda.quantize(w, NF4, global, stats));
    assertEquals(want.getMessage(), got.getMessage());
    assertEquals(new QuantStats(), stats);
    CudaDifferential.assertNoLeaks(cuda);
  }

  /**
   * The code search where it can go wrong, exact quotients: blocks whose absmax is 1 (or -1), so that
   * each other element is its own quotient: every bf16 and f16 value in [-1, 1], and for float32 every
   * value within 64 ulps of each table entry, midpoint and threshold.
   */
  @ParameterizedTest
  @MethodSource("targets")
  void everyQuotientClassOnTheDevice(Target t) {
    CudaBackend cuda = t.backend();
    for (DType d : SimdDifferential.FLOATS) {
      List<Float> q = new java.util.ArrayList<>();
      if (d == DType.F32) {
        float[] table = Nf4Ref.table(d);
        float[] c = Nf4Ref.codeThresholds(d);
        for (int i = 0; i < 16; i++) {
          float[] centres = i == 0 ? new float[] {table[0]} : new float[] {table[i], (table[i - 1] + table[i]) / 2, c[i - 1]};
          for (float centre : centres) {
            float v = centre;
            for (int k = 0; k < 64; k++) {
              v = Math.nextDown(v);
            }
            for (int k = 0; k <= 128; k++, v = Math.nextUp(v)) {
              if (Math.abs(v) <= 1) {
                q.add(v);
              }
            }
          }
        }
      } else {
        for (int h = 0; h < 1 << 16; h++) {
          float v = d == DType.BF16 ? shardquant.kernels.dtype.Bf16.toFloat((short) h)
              : shardquant.kernels.dtype.F16.toFloat((short) h);
          if (Math.abs(v) <= 1) {
            q.add(v);
          }
        }
      }
      int blocks = (q.size() + 62) / 63;
      int groups = (blocks + 255) / 256;
      float[] v = new float[groups * G];
      for (int i = 0; i < q.size(); i++) {
        int b = i / 63;
        v[b * 64] = b % 2 == 0 ? 1f : -1f;
        v[b * 64 + 1 + i % 63] = q.get(i);
      }
      assertWholeTensor(cuda, Tensor.fromFloats(d, new long[] {groups, G}, v), d + " every quotient class");
    }
  }

  /** The thresholds are where the reference code steps, in every dtype (SimdNf4Test checks the step function). */
  @Test
  void thresholdsAreWhereTheReferenceCodeSteps() {
    for (DType d : SimdDifferential.FLOATS) {
      float[] c = Nf4Ref.codeThresholds(d);
      for (int i = 1; i < 16; i++) {
        assertTrue(Nf4Ref.code(c[i - 1], d) >= i, d + " c_" + i);
        assertTrue(Nf4Ref.code(Math.nextDown(c[i - 1]), d) < i, d + " below c_" + i);
      }
    }
  }
}
