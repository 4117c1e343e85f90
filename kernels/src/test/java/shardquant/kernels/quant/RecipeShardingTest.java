package shardquant.kernels.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.Random;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** Row-sharded quantization equals whole-tensor quantization, for every recipe, on awkward shapes. */
public class RecipeShardingTest {
  static Stream<Arguments> cases() {
    return Stream.concat(Stream.of(
        Arguments.of(new QuantConfig(Recipe.INT4_TILE_PACKED, 128, 4), 100, 384, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT4_TILE_PACKED, 32, 4), 24, 1024, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT4_CPU, 64, 4), 208, 256, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, 32, 4), 37, 96, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, 64, 4), 20, 128, DType.F32),
        Arguments.of(new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 32, 2), 19, 64, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 128, 8), 9, 256, DType.F16),
        Arguments.of(new QuantConfig(Recipe.INT8_WEIGHT_ONLY, 0, 8), 33, 70, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT8_DYNAMIC, 0, 8), 17, 33, DType.F32),
        Arguments.of(new QuantConfig(Recipe.NF4, 64, 4), 96, 512, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.NF4, 64, 4), 64, 768, DType.F32)), oneGroupRows());
  }

  /** Rows that hold exactly one group (K = g), every groupwise recipe at every group size it takes. */
  public static Stream<Arguments> oneGroupRows() {
    return Stream.concat(IntStream.of(32, 64, 128, 256).boxed().flatMap(g -> Stream.of(
        Arguments.of(new QuantConfig(Recipe.INT4_TILE_PACKED, g, 4), 21, g, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT4_CPU, g, 4), 80, g, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, g, 4), 13, g, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INTX_WEIGHT_ONLY, g, 4), 11, g, DType.F16),
        Arguments.of(new QuantConfig(Recipe.INTX_WEIGHT_ONLY, g, 8), 7, g, DType.F32))),
        // NF4's blocks are 64 elements: rows of one block
        Stream.of(Arguments.of(new QuantConfig(Recipe.NF4, 64, 4), 256, 64, DType.BF16)));
  }

  /**
   * torchao's shapes for rows of one group: scale and zero point [N, 1] (IntxUnpackedToInt8Tensor's
   * keepdim=True), scale_and_zero [1, N, 2] (pack_tinygemm_scales_and_zeros of [N, 1]), and for tile-packed
   * K padded to 1024 first, so [1024 / g, N', 2]. The values are those of the primitive's own [N] qparams.
   */
  @ParameterizedTest(name = "{0} {1}x{2} {3}")
  @MethodSource("oneGroupRows")
  void oneGroupRowsHaveTorchaosShapes(QuantConfig c, int rows, int cols, DType dtype) {
    Tensor w = weights(rows, cols, dtype, 11L * rows + cols);
    GlobalStats global = c.recipe() == Recipe.NF4
        ? new GlobalStats(Nf4Ref.scalerMean(dtype, Nf4Ref.blockAbsmax(w))) : GlobalStats.NONE;
    QuantizedTensor q = c.recipe().kernel().quantize(w, c, global, new QuantStats());
    long n8 = (rows + 7) / 8 * 8;
    Map<String, long[]> want = switch (c.recipe()) {
      case INT4_TILE_PACKED -> Map.of("qdata", new long[] {n8 / 8, 8, 32, 4}, "scale_and_zero", new long[] {1024 / cols, n8, 2});
      case INT4_CPU -> Map.of("qdata", new long[] {rows, cols / 2}, "scale_and_zero", new long[] {1, rows, 2});
      case INT8_DYN_ACT_INT4_WEIGHT, INTX_WEIGHT_ONLY ->
          Map.of("qdata", new long[] {rows, cols}, "scale", new long[] {rows, 1}, "zero_point", new long[] {rows, 1});
      case NF4 -> Map.of("quantized_data", new long[] {rows * cols / 2}, "quantized_scalers", new long[] {rows * cols / 64});
      default -> throw new AssertionError(c);
    };
    want.forEach((part, shape) -> assertEquals(java.util.Arrays.toString(shape),
        java.util.Arrays.toString(q.part(part).shape()), c + " " + part));
    if (c.recipe() == Recipe.INT8_DYN_ACT_INT4_WEIGHT || c.recipe() == Recipe.INTX_WEIGHT_ONLY) {
      AffineSpec spec = IntxRecipe.spec(c, dtype);
      QParams primitive = AffineQuantRef.chooseQParams(w, spec);
      assertTrue(primitive.scale().reshape(rows, 1).contentEquals(q.part("scale")), c + " scale");
      assertTrue(AffineQuantRef.dequantize(q.part("qdata"), spec, primitive, dtype).contentEquals(q.dequantize(dtype)),
          c + ": dequantizing with [N, 1] qparams gives the values of the primitive's [N]");
    }
  }

  @ParameterizedTest(name = "{0} {1}x{2} {3}")
  @MethodSource("cases")
  void rowShardsJoinToTheWholeTensor(QuantConfig c, int rows, int cols, DType dtype) {
    Tensor w = weights(rows, cols, dtype, rows * 31L + cols);
    RecipeKernel k = c.recipe().kernel();
    assertNull(k.refusal(rows, cols, dtype, c));
    GlobalStats global = c.recipe() == Recipe.NF4
        ? new GlobalStats(Nf4Ref.scalerMean(dtype, Nf4Ref.blockAbsmax(w))) : GlobalStats.NONE;
    QuantStats wholeStats = new QuantStats();
    QuantizedTensor whole = k.quantize(w, c, global, wholeStats);
    long align = k.rowAlignment(cols, c);
    for (long shardRows : new long[] {align, 3 * align}) {
      QuantStats shardStats = new QuantStats();
      Map<String, Tensor> joined = RowShards.quantizeInShards(w, c, global, shardRows, shardStats);
      joined.forEach((name, t) -> RecipeFormatsGoldenTest.assertBytes(whole.part(name), t,
          c + " shards of " + shardRows + " rows: " + name));
      assertEquals(wholeStats, shardStats, "verification sums combine exactly");
    }
    for (PartSpec spec : k.parts(rows, cols, dtype, c)) {
      assertTrue(java.util.Arrays.equals(spec.shape(), whole.part(spec.name()).shape()), spec.toString());
      assertEquals(spec.dtype(), whole.part(spec.name()).dtype(), spec.toString());
    }
    Tensor dq = whole.dequantize(dtype);
    assertEquals(java.util.Arrays.toString(w.shape()), java.util.Arrays.toString(dq.shape()));
    // A row of one group has one scale: a 30x outlier in it rounds the rest of the row to few codes.
    boolean oneGroup = c.recipe().groupwise() && cols == c.groupSize();
    assertTrue(wholeStats.sqnrDb() > (c.bits() >= 4 && !oneGroup ? 9 : 2), c + ": " + wholeStats);
    assertEquals(0, wholeStats.nonFinite());
  }

  @Test
  void recipesRefuseShapesTheyCannotTakeWithTheReason() {
    assertNotNull(Recipe.INT4_CPU.kernel().refusal(40, 256, DType.BF16, QuantConfig.of(Recipe.INT4_CPU)));
    String r = Recipe.INT8_DYN_ACT_INT4_WEIGHT.kernel().refusal(8, 100, DType.BF16, QuantConfig.of(Recipe.INT8_DYN_ACT_INT4_WEIGHT));
    assertTrue(r.contains("K = 100") && r.contains("32"), r);
    assertTrue(Recipe.INT4_TILE_PACKED.kernel().refusal(8, 256, DType.F32, QuantConfig.of(Recipe.INT4_TILE_PACKED))
        .contains("bfloat16"));
    assertTrue(Recipe.NF4.kernel().refusal(3, 100, DType.BF16, QuantConfig.of(Recipe.NF4)).contains("16384"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new QuantConfig(Recipe.INT4_TILE_PACKED, 48, 4));
    assertTrue(e.getMessage().contains("48"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 32, 9));
    assertThrows(IllegalArgumentException.class, () -> Recipe.fromCliName("int3"));
  }

  /** Gaussian weights with the golden edge rows: zeros, a constant, all negative, tiny, 40x larger. */
  public static Tensor weights(int rows, int cols, DType dtype, long seed) {
    Random r = new Random(seed);
    float[] v = new float[rows * cols];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        float g = (float) r.nextGaussian() * 0.02f;
        switch (i % 7) {
          case 1: g = 0; break;
          case 2: g = 0.0123f; break;
          case 3: g = -Math.abs(g) - 1e-3f; break;
          case 4: g = g * 1e-6f; break;
          case 5: g = g * 40; break;
          default: break;
        }
        v[i * cols + j] = r.nextInt(200) == 0 ? g * 30 : g;
      }
    }
    return Tensor.fromFloats(dtype, new long[] {rows, cols}, v);
  }
}
