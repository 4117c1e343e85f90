package shardquant.kernels.backend.simd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.backend.reference.ReferenceBackend;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@link SimdInt4} gives the reference's bytes for every part and its verification sums, for both int4
 * layouts and every group size: awkward shapes (one row, N off a multiple of 8, K needing padding, long
 * rows, rows of one group), edge rows, the golden tinygemm cases and the golden model's weights; heap and direct buffers.
 */
class SimdInt4Test {
  private static final SimdBackend SIMD = new SimdBackend();
  private static final Recipe[] RECIPES = {Recipe.INT4_TILE_PACKED, Recipe.INT4_CPU};

  @Test
  void bothRecipesRunOnTheSimdKernel() {
    for (Recipe r : RECIPES) {
      assertEquals(SIMD.name(), SIMD.nameFor(r), r.cliName());
    }
  }

  @ParameterizedTest(name = "group {0}")
  @ValueSource(ints = {32, 64, 128, 256})
  void tilePackedRandomShards(int group) {
    QuantConfig c = new QuantConfig(Recipe.INT4_TILE_PACKED, group, 4);
    int[][] shapes = {{1, 1}, {1, 13}, {3, 40}, {8, 1024}, {13, 1000}, {5, 1030}, {16, 2048 + 8 * 3 + 5}, {2, 16384}};
    Random r = new Random(group);
    for (int[] s : shapes) {
      assertSameAsReference(gaussian(r, s[0], s[1]), c);
    }
  }

  @ParameterizedTest(name = "group {0}")
  @ValueSource(ints = {32, 64, 128, 256})
  void cpuRandomShards(int group) {
    QuantConfig c = new QuantConfig(Recipe.INT4_CPU, group, 4);
    // 64-row blocks, then a last block of 16, 32 or 48 rows
    int[][] shapes = {{16, group}, {32, 3 * group}, {48, 256}, {64, 1024}, {80, 512}, {112, 256}, {176, 256}, {16, 16384}};
    Random r = new Random(100 + group);
    for (int[] s : shapes) {
      assertSameAsReference(gaussian(r, s[0], s[1]), c);
    }
  }

  @ParameterizedTest(name = "group {0}")
  @ValueSource(ints = {32, 64, 128, 256})
  void edgeRows(int group) {
    for (Recipe recipe : RECIPES) {
      QuantConfig c = new QuantConfig(recipe, group, 4);
      int rows = recipe == Recipe.INT4_CPU ? 96 : 61;
      int cols = recipe == Recipe.INT4_CPU ? 1024 : 1000;
      assertSameAsReference(SimdDifferential.tinygemmEdgeMatrix(new Random(group), rows, cols), c);
    }
  }

  /** Rows of exactly one group (K = g): tile-packed pads K to 1024, int4-cpu keeps one group per row. */
  @ParameterizedTest(name = "group {0}")
  @ValueSource(ints = {32, 64, 128, 256})
  void oneGroupRows(int group) {
    Random r = new Random(200 + group);
    for (int rows : new int[] {1, 8, 21, 61}) {
      assertSameAsReference(gaussian(r, rows, group), new QuantConfig(Recipe.INT4_TILE_PACKED, group, 4));
    }
    for (int rows : new int[] {16, 64, 80, 176}) {
      assertSameAsReference(gaussian(r, rows, group), new QuantConfig(Recipe.INT4_CPU, group, 4));
    }
    for (Recipe recipe : RECIPES) {
      assertSameAsReference(SimdDifferential.tinygemmEdgeMatrix(r, 96, group), new QuantConfig(recipe, group, 4));
    }
  }

  @Test
  void goldenTinygemmCases() throws IOException {
    Path dir = GoldenFiles.dir("torchao-0.19");
    Pattern name = Pattern.compile("tinygemm_int4_\\d+x\\d+_g(\\d+)\\.safetensors");
    List<Path> files;
    try (Stream<Path> s = Files.list(dir)) {
      files = s.filter(p -> name.matcher(p.getFileName().toString()).matches()).sorted().toList();
    }
    assertEquals(4, files.size(), files.toString());
    for (Path f : files) {
      Matcher m = name.matcher(f.getFileName().toString());
      assertTrue(m.matches());
      int group = Integer.parseInt(m.group(1));
      try (SafetensorsFile golden = SafetensorsFile.open(f)) {
        Tensor w = golden.read("w");
        assertSameAsReference(w, new QuantConfig(Recipe.INT4_TILE_PACKED, group, 4));
        // int4-cpu pads nothing: its parts are the golden file's own
        QuantizedTensor q = SIMD.quantize(w, new QuantConfig(Recipe.INT4_CPU, group, 4), GlobalStats.NONE, new QuantStats());
        assertBytes(golden.read("packed_cpu"), q.part("qdata"), f.getFileName() + " packed_cpu");
        assertBytes(golden.read("scale_and_zero"), q.part("scale_and_zero"), f.getFileName() + " scale_and_zero");
        assertSameAsReference(w, new QuantConfig(Recipe.INT4_CPU, group, 4));
      }
    }
  }

  @Test
  void goldenModelWeights() throws IOException {
    Path dir = GoldenFiles.dir("torchao-0.19-formats");
    int checked = 0;
    try (SafetensorsFile input = SafetensorsFile.open(dir.resolve("input.safetensors"));
        SafetensorsFile torchao = SafetensorsFile.open(dir.resolve("format_int4_tile_packed_to_4d_g128.safetensors"))) {
      for (TensorEntry e : input.entries()) {
        if (!e.name().endsWith("proj.weight")) {
          continue;
        }
        Tensor w = input.read(e.name());
        // every group size on the first layer, torchao's default on the rest (the reference is slow)
        for (int group : e.name().contains("layers.0.") ? new int[] {32, 64, 128, 256} : new int[] {128}) {
          for (Recipe recipe : RECIPES) {
            assertSameAsReference(w, new QuantConfig(recipe, group, 4));
          }
        }
        QuantizedTensor q = SIMD.quantize(w, new QuantConfig(Recipe.INT4_TILE_PACKED, 128, 4), GlobalStats.NONE,
            new QuantStats());
        String prefix = e.name().substring(0, e.name().length() - "weight".length()) + "_weight_";
        for (String part : List.of("qdata", "scale_and_zero")) {
          assertBytes(torchao.read(prefix + part), q.part(part), prefix + part);
        }
        checked++;
      }
    }
    assertEquals(14, checked);
  }

  @Test
  void refusesWhatTheReferenceRefuses() {
    QuantConfig tile = new QuantConfig(Recipe.INT4_TILE_PACKED, 32, 4);
    QuantConfig cpu = new QuantConfig(Recipe.INT4_CPU, 32, 4);
    Tensor f32 = Tensor.fromFloats(DType.F32, new long[] {8, 64}, new float[8 * 64]);
    assertThrows(IllegalArgumentException.class, () -> SIMD.quantize(f32, tile, GlobalStats.NONE, new QuantStats()));
    Tensor rows24 = gaussian(new Random(1), 24, 64);
    assertThrows(IllegalArgumentException.class, () -> SIMD.quantize(rows24, cpu, GlobalStats.NONE, new QuantStats()));
    Tensor cols48 = gaussian(new Random(1), 16, 48);
    assertThrows(IllegalArgumentException.class, () -> SIMD.quantize(cols48, cpu, GlobalStats.NONE, new QuantStats()));
  }

  @Test
  void refusesNonFiniteInputsAndLeavesTheStatsAlone() {
    for (Recipe recipe : RECIPES) {
      for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
        QuantConfig c = new QuantConfig(recipe, 32, 4);
        Tensor w = gaussian(new Random(2), 32, 256);
        w.setFloat(20L * 256 + 77, bad);
        for (var backend : List.of(ReferenceBackend.INSTANCE, SIMD)) {
          QuantStats stats = new QuantStats();
          IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
              () -> backend.quantize(w, c, GlobalStats.NONE, stats));
          assertTrue(e.getMessage().contains("row 20, column 77"), e.getMessage());
          assertEquals(new QuantStats(), stats, backend.name());
        }
      }
    }
  }

  /**
   * The kernel takes a group's min and max on ordered ints: -0.0 must stay below 0.0 (as Math.min and
   * Math.max have it) and a NaN with its sign bit set must still be refused.
   */
  @Test
  void signedZerosAndNegativeNaNAsTheReference() {
    for (Recipe recipe : RECIPES) {
      QuantConfig c = new QuantConfig(recipe, 32, 4);
      Tensor w = gaussian(new Random(3), 16, 128);
      for (int col = 0; col < 64; col++) {
        w.setFloat(3L * 128 + col, col % 2 == 0 ? -0.0f : 0.0f); // groups of both zeros
        w.setFloat(5L * 128 + col, -0.0f); // groups of -0.0 only
        w.setFloat(7L * 128 + col, col % 3 == 0 ? -0.0f : col * 1e-3f); // min -0.0 among positives
        w.setFloat(9L * 128 + col, col % 3 == 0 ? 0.0f : -col * 1e-3f); // max 0.0 among negatives
      }
      assertSameAsReference(w, c);
      Tensor nan = gaussian(new Random(4), 16, 128);
      nan.bytes().putShort(2 * (9 * 128 + 40), (short) 0xffc0); // -NaN: sign bit set
      for (var backend : List.of(ReferenceBackend.INSTANCE, SIMD)) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> backend.quantize(nan, c, GlobalStats.NONE, new QuantStats()));
        assertTrue(e.getMessage().contains("row 9, column 40"), e.getMessage());
      }
    }
  }

  /** Every part's bytes and the stats equal the reference's, reading from a heap and from a direct buffer. */
  private static void assertSameAsReference(Tensor w, QuantConfig c) {
    String what = c + " " + w;
    QuantStats want = new QuantStats();
    QuantizedTensor ref = ReferenceBackend.INSTANCE.quantize(w, c, GlobalStats.NONE, want);
    for (boolean direct : new boolean[] {false, true}) {
      QuantStats got = new QuantStats();
      QuantizedTensor q = SIMD.quantize(copy(w, direct), c, GlobalStats.NONE, got);
      String where = what + (direct ? " (direct)" : " (heap)");
      assertEquals(List.copyOf(ref.parts().keySet()), List.copyOf(q.parts().keySet()), where);
      assertArrayEquals(ref.shape(), q.shape(), where);
      ref.parts().forEach((name, t) -> assertBytes(t, q.part(name), where + " " + name));
      assertEquals(want, got, where + " stats");
      assertEquals(want.nonFinite(), got.nonFinite(), where + " non-finite count");
    }
  }

  static void assertBytes(Tensor want, Tensor got, String what) {
    assertEquals(want.dtype(), got.dtype(), what);
    assertArrayEquals(want.shape(), got.shape(), what);
    ByteBuffer a = want.bytes();
    ByteBuffer b = got.bytes();
    int i = a.mismatch(b);
    if (i >= 0) {
      throw new AssertionError(what + ": first byte difference at " + i + " (element " + i / want.dtype().byteSize()
          + "): want " + (a.get(i) & 0xff) + ", got " + (b.get(i) & 0xff));
    }
  }

  private static Tensor copy(Tensor t, boolean direct) {
    ByteBuffer b = direct ? ByteBuffer.allocateDirect(Math.toIntExact(t.byteSize())) : ByteBuffer.allocate(Math.toIntExact(t.byteSize()));
    b.order(ByteOrder.LITTLE_ENDIAN).put(t.bytes()).flip();
    return Tensor.of(t.dtype(), t.shape(), b);
  }

  /** Gaussian bf16 rows, each with its own scale and offset. */
  private static Tensor gaussian(Random r, int rows, int cols) {
    float[] v = new float[rows * cols];
    for (int i = 0; i < rows; i++) {
      double scale = Math.pow(10, r.nextInt(7) - 4);
      double offset = r.nextInt(4) == 0 ? r.nextGaussian() * scale * 3 : 0;
      for (int j = 0; j < cols; j++) {
        v[i * cols + j] = (float) (offset + r.nextGaussian() * scale);
      }
    }
    return Tensor.fromFloats(DType.BF16, new long[] {rows, cols}, v);
  }

}
