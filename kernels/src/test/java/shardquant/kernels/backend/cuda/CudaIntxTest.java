package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.backend.cuda.CudaDifferential.Target;
import shardquant.kernels.backend.simd.SimdDifferential;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.AffineQuantRef;
import shardquant.kernels.quant.AffineSpec;
import shardquant.kernels.quant.BlockSize;
import shardquant.kernels.quant.MappingType;
import shardquant.kernels.quant.QParams;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.ZeroPointDomain;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@code intx_groupwise} (src/main/cuda/intx_groupwise.cu) through {@link CudaIntx} against the
 * reference, byte for byte with equal verification sums: every config the recipes take (8da4w at 4
 * bits, intx-weight-only at 1..8 bits, groups 32..256), every input dtype, shapes around the 8-row
 * blocks, edge rows, the golden weights, chunked uploads, NaN and infinity and K not a multiple of
 * the group refused with the reference's words; and the kernel's other mappings and group shapes
 * (per row, groups not a multiple of the warp) against AffineQuantRef. Each runs on the emulator and
 * on the GPU (skipped with the probe's reason where there is none).
 */
class CudaIntxTest {
  private static final int[] GROUPS = {32, 64, 128, 256};

  /** 8da4w (4 bits) and intx-weight-only with every bit width, at every group size. */
  static List<QuantConfig> configs() {
    return IntStream.of(GROUPS).boxed().flatMap(g -> Stream.concat(
        Stream.of(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, g, 4)),
        IntStream.rangeClosed(1, 8).mapToObj(bits -> new QuantConfig(Recipe.INTX_WEIGHT_ONLY, g, bits)))).toList();
  }

  static List<Target> targets() {
    return CudaDifferential.targets();
  }

  @ParameterizedTest
  @MethodSource("targets")
  void everyConfigEveryDtype(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(90);
    for (QuantConfig c : configs()) {
      int g = c.groupSize();
      for (DType d : SimdDifferential.FLOATS) {
        // one row and 9 rows (a full 8-row block and one more) of one group (K = g); 9 rows of several groups
        for (int[] s : new int[][] {{1, g}, {9, g}, {9, 3 * g}}) {
          CudaDifferential.assertSameAsReference(cuda, SimdDifferential.random(d, s[0], s[1], r), c, d.torchName());
        }
      }
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void edgeRows(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(91);
    for (QuantConfig c : configs()) {
      for (DType d : SimdDifferential.FLOATS) {
        for (int cols : new int[] {c.groupSize(), 2 * c.groupSize()}) {
          CudaDifferential.assertSameAsReference(cuda, SimdDifferential.edgeRows(d, cols, r), c, "edge rows");
        }
      }
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void longRowsDirectBufferAndRowSlice(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(92);
    for (DType d : SimdDifferential.FLOATS) {
      CudaDifferential.assertSameAsReference(cuda, SimdDifferential.random(d, 2, 8192, r),
          QuantConfig.of(Recipe.INT8_DYN_ACT_INT4_WEIGHT), "long rows");
    }
    CudaDifferential.assertSameAsReference(cuda, SimdDifferential.copy(SimdDifferential.random(DType.BF16, 4, 768, r), true),
        new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 256, 6), "direct");
    CudaDifferential.assertSameAsReference(cuda, SimdDifferential.random(DType.F16, 9, 128, r).rowSlice(4, 7),
        QuantConfig.of(Recipe.INT8_DYN_ACT_INT4_WEIGHT), "slice");
  }

  @Test
  void manySmallChunksGiveTheSameBytes() {
    Random r = new Random(93);
    for (DType d : SimdDifferential.FLOATS) {
      // 4 KiB chunks: 1 to 4 rows each, so staging buffers are reused many times
      CudaDifferential.assertSameAsReference(CudaDifferential.emulatedSmallChunks(), SimdDifferential.random(d, 37, 1024, r),
          new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 64, 3), "4 KiB chunks");
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void goldenWeights(Target t) throws IOException {
    CudaBackend cuda = t.backend();
    List<QuantConfig> configs = configs();
    int ran = 0;
    List<SimdDifferential.Golden> golden = SimdDifferential.goldenWeights();
    for (int i = 0; i < golden.size(); i++) {
      SimdDifferential.Golden w = golden.get(i);
      Tensor rows = t.sample(w.w());
      // on the GPU 8da4w and intx-weight-only at every group size; on the emulator (slow) one config
      // per weight, stepping through all of them over the files
      List<QuantConfig> mine = t == Target.GPU
          ? IntStream.of(GROUPS).boxed().flatMap(g -> Stream.of(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, g, 4),
              new QuantConfig(Recipe.INTX_WEIGHT_ONLY, g, 1 + g % 7))).toList()
          : List.of(configs.get(i * 7 % configs.size()));
      for (QuantConfig c : mine) {
        if (c.recipe().kernel().refusal(rows.rows(), rows.cols(), rows.dtype(), c) != null) {
          CudaDifferential.assertSameRefusal(cuda, rows, c);
          continue;
        }
        CudaDifferential.assertSameAsReference(cuda, rows, c, w.name());
        ran++;
      }
    }
    assertTrue(ran > 0, "no golden weight fits a group size");
  }

  @ParameterizedTest
  @MethodSource("targets")
  void refusesWhatTheReferenceRefuses(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(94);
    QuantConfig c = QuantConfig.of(Recipe.INTX_WEIGHT_ONLY);
    for (DType d : SimdDifferential.FLOATS) {
      for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
        Tensor rows = SimdDifferential.random(d, 10, 96, r);
        rows.setFloat(9 * 96 + 95, bad); // last element of the last row, in the second block of rows
        rows.setFloat(2 * 96 + 40, bad);
        CudaDifferential.assertSameRefusal(cuda, rows, c);
      }
    }
    CudaDifferential.assertSameRefusal(cuda, SimdDifferential.random(DType.BF16, 2, 48, r), c);
    CudaDifferential.assertSameRefusal(cuda, SimdDifferential.random(DType.F32, 3, 96, r),
        new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, 64, 4));
  }

  /** The kernel's other mappings and group shapes, which no recipe asks for yet, against AffineQuantRef. */
  @ParameterizedTest
  @MethodSource("targets")
  void everyMappingAndGroupShapeAsAffineQuantRef(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(95);
    // {cols, group}: per row (not a multiple of 8 or 32, and longer than the 256 kept in registers),
    // groups smaller than a warp, groups not a multiple of 8 or of the warp
    int[][] shapes = {{7, 7}, {100, 100}, {300, 300}, {24, 8}, {36, 12}, {144, 48}, {96, 32}};
    for (MappingType m : MappingType.values()) {
      for (int bits = 1; bits <= 8; bits++) {
        int half = 1 << (bits - 1);
        for (DType d : SimdDifferential.FLOATS) {
          int[] s = shapes[(bits + m.ordinal()) % shapes.length];
          assertSameAsAffineRef(cuda, SimdDifferential.random(d, 9, s[0], r), m, s[1], -half, half - 1);
          assertSameAsAffineRef(cuda, SimdDifferential.edgeRows(d, s[0], r), m, s[1], -half, half - 1);
        }
      }
    }
    // an asymmetric range, as a uint-like code range in int8 storage (the zero point is then not 0)
    for (DType d : SimdDifferential.FLOATS) {
      for (MappingType m : MappingType.values()) {
        assertSameAsAffineRef(cuda, SimdDifferential.random(d, 5, 64, r), m, 32, 0, 15);
        assertSameAsAffineRef(cuda, SimdDifferential.edgeRows(d, 64, r), m, 64, -100, 27);
      }
    }
  }

  /**
   * Rows the kernel walks in several passes of groups whose sizes are not multiples of 8 (the stat lanes'
   * period), so a tile of verification terms starts off lane 0; and groups longer than a term tile.
   */
  @ParameterizedTest
  @MethodSource("targets")
  void passesStartingOffTheStatLanes(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(96);
    int[][] shapes = {{1200, 100}, {700, 7}, {1500, 300}, {2048, 1024}};
    for (DType d : SimdDifferential.FLOATS) {
      for (int[] s : shapes) {
        assertSameAsAffineRef(cuda, SimdDifferential.random(d, 3, s[0], r), MappingType.SYMMETRIC, s[1], -8, 7);
      }
    }
  }

  private static void assertSameAsAffineRef(CudaBackend cuda, Tensor rows, MappingType m, int group, int quantMin, int quantMax) {
    DType d = rows.dtype();
    AffineSpec spec = new AffineSpec(m, BlockSize.group(group), DType.I8, quantMin, quantMax, AffineSpec.defaultEps(d), d,
        DType.I8, ZeroPointDomain.INT);
    String where = m + " group " + group + " codes " + quantMin + ".." + quantMax + " " + rows;
    QParams qp = AffineQuantRef.chooseQParams(rows, spec);
    long[] clipped = new long[Math.toIntExact(rows.rows())];
    Tensor q = AffineQuantRef.quantize(rows, spec, qp, clipped);
    QuantStats want = new QuantStats();
    want.addRows(rows, AffineQuantRef.dequantize(q, spec, qp, d), clipped, rows.rows(), rows.cols());
    QuantStats got = new QuantStats();
    CudaIntx.Parts p = CudaIntx.affine(new Gpu(cuda.device(), CudaShard.CHUNK_BYTES), rows, m, group, quantMin, quantMax, got);
    if (want.nonFinite() > 0) { // a dequantized value overflowed: the kernel hands the shard to the CPU
      assertEquals(null, p, where);
      assertEquals(new QuantStats(), got, where);
      return;
    }
    assertNotNull(p, where);
    long[] groups = {rows.rows(), rows.cols() / group};
    SimdDifferential.assertBytes(q, p.qdata(), where + " codes");
    SimdDifferential.assertBytes(qp.scale().reshape(groups), p.scale(), where + " scale");
    SimdDifferential.assertBytes(qp.zeroPoint().reshape(groups), p.zeroPoint(), where + " zero point");
    assertEquals(want, got, where + " stats");
    CudaDifferential.assertNoLeaks(cuda);
  }
}
