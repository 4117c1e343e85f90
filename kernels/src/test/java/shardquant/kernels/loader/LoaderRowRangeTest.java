package shardquant.kernels.loader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.RecipeShardingTest;
import shardquant.kernels.tensor.Tensor;

/**
 * Row-range reads of every recipe, on awkward shapes: an aligned range gives exactly the parts of
 * quantizing those rows alone and maps only their bytes; any range dequantizes to the same rows as a
 * full read.
 */
class LoaderRowRangeTest {
  private static final String W = "model.layers.0.mlp.up_proj.weight";

  @TempDir Path dir;

  static Stream<Arguments> cases() {
    return Stream.concat(Stream.of(
        Arguments.of(new QuantConfig(Recipe.INT4_TILE_PACKED, 128, 4), 100, 384, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT4_TILE_PACKED, 32, 4), 8, 1024, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT4_TILE_PACKED, 64, 4), 1003, 1024, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT4_CPU, 64, 4), 208, 256, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT4_CPU, 128, 4), 64, 256, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT4_CPU, 32, 4), 16, 128, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, 32, 4), 37, 96, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, 64, 4), 1, 128, DType.F32),
        Arguments.of(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, 32, 4), 777, 1024, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 32, 2), 19, 64, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 128, 8), 9, 256, DType.F16),
        Arguments.of(new QuantConfig(Recipe.INT8_WEIGHT_ONLY, 0, 8), 33, 70, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT8_DYNAMIC, 0, 8), 17, 33, DType.F32),
        Arguments.of(new QuantConfig(Recipe.INT8_DYNAMIC, 0, 8), 1, 40, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.NF4, 64, 4), 96, 512, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.NF4, 64, 4), 64, 768, DType.F32),
        Arguments.of(new QuantConfig(Recipe.NF4, 64, 4), 512, 2048, DType.BF16)),
        RecipeShardingTest.oneGroupRows());
  }

  @ParameterizedTest(name = "{0} {1}x{2} {3}")
  @MethodSource("cases")
  void rowRangesEqualTheSameRowsOfAFullRead(QuantConfig c, int rows, int cols, DType dtype) throws IOException {
    Tensor w = LoaderFixtures.weights(rows, cols, dtype, rows * 31L + cols);
    LoaderFixtures.writeOutputDir(dir, c, LoaderFixtures.model(w, c), 2);
    QuantizedTensor whole = LoaderFixtures.quantize(w, c);
    long align = c.recipe().kernel().rowAlignment(cols, c);
    try (Checkpoint cp = Checkpoint.open(dir)) {
      TensorInfo info = cp.tensor(W);
      assertEquals(c, info.config());
      assertEquals(Arrays.toString(w.shape()), Arrays.toString(info.shape()));
      assertEquals(dtype, info.dtype());
      assertParts(whole, cp.readQuantized(W), "whole");
      for (DType out : new DType[] {DType.F32, DType.BF16}) {
        assertTrue(whole.dequantize(out).contentEquals(cp.dequantize(W, out)), "dequantized whole to " + out);
      }

      for (long[] r : alignedRanges(rows, align)) {
        long before = cp.bytesMapped();
        QuantizedTensor got = cp.readRows(W, r[0], r[1]);
        QuantizedTensor want = LoaderFixtures.quantizeRows(w, c, r[0], r[1]);
        String what = "rows [" + r[0] + ", " + r[1] + ")";
        assertParts(want, got, what);
        assertEquals(Arrays.toString(want.shape()), Arrays.toString(got.shape()), what);
        long wantBytes = want.parts().values().stream().mapToLong(Tensor::byteSize).sum();
        assertEquals(wantBytes, cp.bytesMapped() - before, what + ": maps exactly the bytes of those rows' parts");
        assertEquals(wantBytes, cp.rowRange(W, r[0], r[1]).byteCount(), what);
      }

      Tensor f32 = whole.dequantize(DType.F32);
      Tensor bf16 = whole.dequantize(DType.BF16);
      for (long[] r : unalignedRanges(rows, align)) {
        String what = "rows [" + r[0] + ", " + r[1] + ")";
        assertTrue(f32.rowSlice(r[0], r[1]).contentEquals(cp.dequantizeRows(W, r[0], r[1], DType.F32)), what + " f32");
        assertTrue(bf16.rowSlice(r[0], r[1]).contentEquals(cp.dequantizeRows(W, r[0], r[1], DType.BF16)), what + " bf16");
        RowRange plan = cp.rowRange(W, r[0], r[1]);
        assertTrue(plan.alignedFrom() <= r[0] && r[1] <= plan.alignedTo() && plan.alignedFrom() % align == 0
            && (plan.alignedTo() % align == 0 || plan.alignedTo() == rows), what + " covered by " + plan);
        if (!plan.aligned()) {
          IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cp.readRows(W, r[0], r[1]));
          assertTrue(e.getMessage().contains(W) && e.getMessage().contains("[" + plan.alignedFrom() + ", "
              + plan.alignedTo() + ")"), e.getMessage());
        }
      }
    }
  }

  @Test
  void tilePackedRowRangeMapsOneQdataRunAndOneScaleAndZeroRunPerGroup() throws IOException {
    QuantConfig c = new QuantConfig(Recipe.INT4_TILE_PACKED, 128, 4);
    Tensor w = LoaderFixtures.weights(100, 384, DType.BF16, 9);
    LoaderFixtures.writeOutputDir(dir, c, LoaderFixtures.model(w, c), 2);
    try (Checkpoint cp = Checkpoint.open(dir)) {
      // N = 100 pads to 104 (13 tiles of 8), K = 384 to 1024: qdata [13][8][32][4] int32, scale_and_zero [8][104][2] bf16.
      RowRange r = cp.rowRange(W, 20, 43);
      assertEquals(16, r.alignedFrom());
      assertEquals(48, r.alignedTo());
      RowRange.PartRuns qdata = r.parts().get(0);
      assertEquals("model.layers.0.mlp.up_proj._weight_qdata", qdata.key());
      long tileBytes = 8 * 32 * 4 * 4;
      assertEquals(List.of(new RowRange.ByteRun(2 * tileBytes, 4 * tileBytes)), qdata.runs());
      RowRange.PartRuns sz = r.parts().get(1);
      assertEquals(List.of(1024L / 128, 32L, 2L), Arrays.stream(sz.spec().shape()).boxed().toList());
      List<RowRange.ByteRun> runs = new ArrayList<>();
      for (long g = 0; g < 8; g++) {
        runs.add(new RowRange.ByteRun((g * 104 + 16) * 2 * 2, 32 * 2 * 2));
      }
      assertEquals(runs, sz.runs());

      // The last range ends off the tile grid: its tile holds the padding rows, as the whole tensor's does.
      RowRange last = cp.rowRange(W, 96, 100);
      assertEquals(List.of(new RowRange.ByteRun(12 * tileBytes, tileBytes)), last.parts().get(0).runs());
      assertEquals(8 * 2 * 2, last.parts().get(1).runs().get(0).length());

      // The whole tensor is one run per part.
      cp.rowRange(W, 0, 100).parts().forEach(p -> assertEquals(1, p.runs().size(), p.key()));
    }
  }

  @Test
  void nf4ReadsItsReplicatedTableAndScalerMeanWhole() throws IOException {
    QuantConfig c = QuantConfig.of(Recipe.NF4);
    Tensor w = LoaderFixtures.weights(96, 512, DType.BF16, 4);
    LoaderFixtures.writeOutputDir(dir, c, LoaderFixtures.model(w, c), 2);
    try (Checkpoint cp = Checkpoint.open(dir)) {
      RowRange r = cp.rowRange(W, 32, 64);
      for (RowRange.PartRuns p : r.parts()) {
        assertEquals(1, p.runs().size(), p.key());
        PartSpec spec = p.spec();
        switch (spec.name()) {
          case "quantized_data" -> assertEquals(new RowRange.ByteRun(32 * 512 / 2, 32 * 512 / 2), p.runs().get(0));
          case "quantization_factor" -> assertEquals(new RowRange.ByteRun(2, 2), p.runs().get(0));
          case "quantized_scalers" -> assertEquals(new RowRange.ByteRun(32 * 512 / 64, 32 * 512 / 64), p.runs().get(0));
          case "scaler_mean" -> assertEquals(new RowRange.ByteRun(0, 2), p.runs().get(0));
          case "nf4" -> assertEquals(new RowRange.ByteRun(0, 32), p.runs().get(0));
          default -> throw new AssertionError(spec.name());
        }
      }
    }
  }

  /** Ranges on the alignment grid: the first unit, units 1..3, the last (possibly short) unit, everything. */
  private static List<long[]> alignedRanges(long rows, long align) {
    long lastStart = (rows - 1) / align * align;
    List<long[]> out = new ArrayList<>();
    out.add(new long[] {0, Math.min(rows, align)});
    if (rows > align) {
      out.add(new long[] {align, Math.min(rows, 3 * align)});
    }
    out.add(new long[] {lastStart, rows});
    out.add(new long[] {0, rows});
    return out;
  }

  /** Ranges across and inside alignment units, at the ends and in the middle (all non-empty, in [0, rows)). */
  private static List<long[]> unalignedRanges(long rows, long align) {
    List<long[]> out = new ArrayList<>();
    out.add(new long[] {0, 1});
    out.add(new long[] {rows - 1, rows});
    if (rows > 2) {
      out.add(new long[] {1, rows - 1});
      out.add(new long[] {rows / 3, 2 * rows / 3 + 1});
    }
    if (rows > align + 1) {
      out.add(new long[] {align - 1, align + 1});
    }
    return out;
  }

  private static void assertParts(QuantizedTensor want, QuantizedTensor got, String what) {
    assertEquals(want.config(), got.config(), what);
    assertEquals(want.parts().keySet(), got.parts().keySet(), what);
    want.parts().forEach((name, t) -> {
      Tensor g = got.part(name);
      assertEquals(t.dtype(), g.dtype(), what + " " + name);
      assertEquals(Arrays.toString(t.shape()), Arrays.toString(g.shape()), what + " " + name);
      assertTrue(t.bytes().equals(g.bytes()), what + ": " + name + " bytes differ");
    });
  }
}
