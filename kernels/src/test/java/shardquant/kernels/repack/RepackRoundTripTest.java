package shardquant.kernels.repack;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.RecipeFormatsGoldenTest;
import shardquant.kernels.quant.RecipeShardingTest;
import shardquant.kernels.quant.RowShards;
import shardquant.kernels.quant.TorchaoMetadata;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * Converting int4 weights quantized by {@code int4-tile-packed} to the cpu and plain forms and back gives
 * the original bytes; the cpu form is what {@code int4-cpu} itself writes; the plain form dequantizes to
 * the tile-packed values; row shards convert to row slices of the whole. Shapes cover N padded to 8 (100),
 * N not a multiple of 16 (100, 8, 40: no cpu form), K below, at and above 1024, rows of one group (K = g),
 * and every group size.
 */
class RepackRoundTripTest {
  private static final int[][] SHAPES = {{64, 256}, {208, 768}, {100, 512}, {16, 2304}, {8, 1024}};

  static Stream<Arguments> cases() {
    return Stream.concat(
        Stream.of(SHAPES).flatMap(s -> Stream.of(32, 64, 128, 256).map(g -> Arguments.of(s[0], s[1], g))),
        // rows of one group (K = g): scale and zero [N, 1] in the cpu and plain forms, K padded to 1024 tile-packed
        Stream.of(64, 40).flatMap(n -> Stream.of(32, 64, 128, 256).map(g -> Arguments.of(n, g, g))));
  }

  private static QuantizedTensor quantize(Recipe recipe, Tensor w, int groupSize) {
    QuantConfig c = new QuantConfig(recipe, groupSize, 4);
    assertNull(recipe.kernel().refusal(w.rows(), w.cols(), w.dtype(), c));
    return recipe.kernel().quantize(w, c, GlobalStats.NONE, new QuantStats());
  }

  private static Set<Int4Layout> layoutsFor(int n) {
    return n % 16 == 0 ? EnumSet.allOf(Int4Layout.class) : EnumSet.of(Int4Layout.TILE_PACKED, Int4Layout.PLAIN);
  }

  @ParameterizedTest(name = "{0}x{1} group {2}")
  @MethodSource("cases")
  void roundTripsGiveTheOriginalBytes(int n, int k, int g) {
    Tensor w = RecipeShardingTest.weights(n, k, DType.BF16, 31L * n + k + g);
    TinygemmInt4Tensor tile = TinygemmInt4Tensor.of(quantize(Recipe.INT4_TILE_PACKED, w, g));
    Tensor values = tile.dequantize(DType.BF16);
    assertSame(tile, tile.repack(Int4Layout.TILE_PACKED));
    for (Int4Layout via : layoutsFor(n)) {
      TinygemmInt4Tensor other = tile.repack(via);
      assertParts(other, tile.parts(via), "tile-packed -> " + via.cliName());
      assertSameParts(tile, other.repack(Int4Layout.TILE_PACKED), "tile-packed -> " + via.cliName() + " -> tile-packed");
      RecipeFormatsGoldenTest.assertBytes(values, other.dequantize(DType.BF16), via.cliName() + " dequantizes as tile-packed");
      for (Int4Layout third : layoutsFor(n)) {
        assertSameParts(tile.repack(third), other.repack(third), via.cliName() + " -> " + third.cliName());
      }
    }
    if (n % 16 == 0) {
      TinygemmInt4Tensor cpu = TinygemmInt4Tensor.of(quantize(Recipe.INT4_CPU, w, g));
      assertSameParts(cpu, tile.repack(Int4Layout.CPU), "tile-packed -> cpu is int4-cpu's own quantization");
      assertSameParts(tile, cpu.repack(Int4Layout.TILE_PACKED), "int4-cpu -> tile-packed");
      assertSameParts(cpu, cpu.repack(Int4Layout.PLAIN).repack(Int4Layout.CPU), "cpu -> plain -> cpu");
      assertEquals(TorchaoMetadata.quantized(new QuantConfig(Recipe.INT4_CPU, g, 4), w.shape(), DType.BF16),
          tile.repack(Int4Layout.CPU).torchaoMetadata());
      RecipeFormatsGoldenTest.assertBytes(cpu.toQuantized().dequantize(DType.BF16), values, "int4-cpu dequantizes alike");
    }
    assertEquals(TorchaoMetadata.quantized(new QuantConfig(Recipe.INT4_TILE_PACKED, g, 4), w.shape(), DType.BF16),
        tile.repack(Int4Layout.PLAIN).repack(Int4Layout.TILE_PACKED).torchaoMetadata());
  }

  @ParameterizedTest(name = "{0}x{1} group {2}")
  @MethodSource("cases")
  void rowShardsConvertToRowSlicesOfTheWhole(int n, int k, int g) {
    Tensor w = RecipeShardingTest.weights(n, k, DType.BF16, 7L * n + k + g);
    QuantizedTensor whole = quantize(Recipe.INT4_TILE_PACKED, w, g);
    for (Int4Layout from : layoutsFor(n)) {
      for (Int4Layout to : layoutsFor(n)) {
        TinygemmInt4Tensor expected = TinygemmInt4Tensor.of(whole).repack(from).repack(to);
        int align = Math.max(Int4Layout.TILE_PACKED.rowAlignment(), TinygemmInt4Tensor.rowAlignment(from, to));
        for (int shardRows : new int[] {align, 3 * align}) {
          List<TinygemmInt4Tensor> shards = new ArrayList<>();
          for (int r = 0; r < n; r += shardRows) {
            Tensor rows = w.rowSlice(r, Math.min(n, r + shardRows));
            shards.add(TinygemmInt4Tensor.of(quantize(Recipe.INT4_TILE_PACKED, rows, g)).repack(from).repack(to));
          }
          String what = from.cliName() + " -> " + to.cliName() + " in shards of " + shardRows + " rows";
          for (PartSpec spec : expected.parts(to)) {
            List<Tensor> pieces = new ArrayList<>();
            shards.forEach(s -> pieces.add(s.part(spec.name())));
            RecipeFormatsGoldenTest.assertBytes(expected.part(spec.name()), RowShards.concat(pieces, spec.rowDim()),
                what + ": " + spec.name());
          }
        }
      }
    }
  }

  /** Every part as {@link TinygemmInt4Tensor#parts} declares it, in order. */
  private static void assertParts(TinygemmInt4Tensor t, List<PartSpec> specs, String what) {
    assertEquals(specs.stream().map(PartSpec::name).toList(), List.copyOf(t.parts().keySet()), what);
    for (PartSpec spec : specs) {
      Tensor part = t.part(spec.name());
      assertEquals(spec.dtype(), part.dtype(), what + ": " + spec);
      assertArrayEquals(spec.shape(), part.shape(), what + ": " + spec);
    }
  }

  private static void assertSameParts(TinygemmInt4Tensor want, TinygemmInt4Tensor got, String what) {
    assertEquals(want.layout(), got.layout(), what);
    assertArrayEquals(want.shape(), got.shape(), what);
    assertEquals(want.parts().keySet(), got.parts().keySet(), what);
    for (Map.Entry<String, Tensor> e : want.parts().entrySet()) {
      RecipeFormatsGoldenTest.assertBytes(e.getValue(), got.part(e.getKey()), what + ": " + e.getKey());
    }
  }
}
