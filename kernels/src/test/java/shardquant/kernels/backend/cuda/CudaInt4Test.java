package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.backend.cuda.CudaDifferential.Target;
import shardquant.kernels.select.Backends;
import shardquant.kernels.backend.simd.SimdDifferential;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@code int4_tile_packed} and {@code int4_cpu} (src/main/cuda/int4_tinygemm.cu) through {@link CudaInt4}
 * against the reference, byte for byte with equal verification sums: every group size, shapes that need
 * tile-packed's padding of N and K, every last row block of the CPU layout, edge rows, the golden tinygemm
 * cases (their packed_cpu and scale_and_zero bytes too), the golden weights, chunked uploads, NaN and
 * infinity refused with the reference's words, and refused shapes and dtypes left to the CPU backend. Each runs on the emulator and on the GPU
 * (skipped with the probe's reason where there is none).
 */
class CudaInt4Test {
  private static final int[] GROUPS = {32, 64, 128, 256};
  private static final Recipe[] RECIPES = {Recipe.INT4_TILE_PACKED, Recipe.INT4_CPU};

  static List<Target> targets() {
    return CudaDifferential.targets();
  }

  @ParameterizedTest
  @MethodSource("targets")
  void tilePackedRandomShapesEveryGroup(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(40);
    // one row, N off a multiple of 8, K padded to 1024 (also from just above it), 64-row blocks and a partial one
    int[][] shapes = {{1, 1}, {1, 13}, {3, 40}, {8, 1024}, {13, 1000}, {5, 1030}, {16, 2048 + 8 * 3 + 5}, {70, 300},
        {2, 4096}};
    for (int g : GROUPS) {
      for (int[] s : shapes) {
        check(cuda, SimdDifferential.random(DType.BF16, s[0], s[1], r), new QuantConfig(Recipe.INT4_TILE_PACKED, g, 4),
            "random");
      }
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void cpuRandomShapesEveryGroup(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(41);
    for (int g : GROUPS) {
      // 64-row blocks, then a last block of 16, 32 or 48 rows; K a multiple of the group (not of 256)
      int[][] shapes = {{16, g}, {32, 3 * g}, {48, 256}, {64, 512}, {80, 5 * g}, {112, 256}, {128, 7 * g}, {16, 4096}};
      for (int[] s : shapes) {
        check(cuda, SimdDifferential.random(DType.BF16, s[0], s[1], r), new QuantConfig(Recipe.INT4_CPU, g, 4), "random");
      }
    }
  }

  /** Rows of exactly one group (K = g): tile-packed pads K to 1024; int4-cpu keeps one group and one 32-column step. */
  @ParameterizedTest
  @MethodSource("targets")
  void oneGroupRows(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(44);
    for (int g : GROUPS) {
      for (int rows : new int[] {1, 21}) {
        check(cuda, SimdDifferential.random(DType.BF16, rows, g, r), new QuantConfig(Recipe.INT4_TILE_PACKED, g, 4), "random");
      }
      check(cuda, SimdDifferential.random(DType.BF16, 80, g, r), new QuantConfig(Recipe.INT4_CPU, g, 4), "random");
      for (Recipe recipe : RECIPES) {
        check(cuda, SimdDifferential.tinygemmEdgeMatrix(r, 48, g), new QuantConfig(recipe, g, 4), "edge matrix");
      }
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void edgeRows(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(42);
    for (int g : GROUPS) {
      // 15 edge kinds (±bf16 max: max - min overflows, NaN codes, non-finite dequantized values)
      for (int cols : new int[] {256, 1000}) {
        check(cuda, SimdDifferential.edgeRows(DType.BF16, cols, r), new QuantConfig(Recipe.INT4_TILE_PACKED, g, 4),
            "edge rows");
      }
      check(cuda, SimdDifferential.tinygemmEdgeMatrix(r, 96, 512), new QuantConfig(Recipe.INT4_TILE_PACKED, g, 4), "edge matrix");
      check(cuda, SimdDifferential.tinygemmEdgeMatrix(r, 96, 512), new QuantConfig(Recipe.INT4_CPU, g, 4), "edge matrix");
    }
    // finite input whose dequantized values are not (a group spanning ±bf16 max) stays on the GPU
    Gpu gpu = new Gpu(cuda.device(), CudaShard.CHUNK_BYTES);
    Tensor edge = SimdDifferential.tinygemmEdgeMatrix(r, 16, 256);
    for (Int4Layout layout : List.of(Int4Layout.TILE_PACKED, Int4Layout.CPU)) {
      Recipe recipe = layout.recipe();
      QuantStats stats = new QuantStats();
      assertNotNull(new CudaInt4(layout).quantize(gpu, edge, new QuantConfig(recipe, 32, 4), GlobalStats.NONE, stats),
          layout + " sent finite input to the CPU");
      assertTrue(stats.nonFinite() > 0, layout + ": the ±max rows' dequantized values are infinite or NaN");
      CudaDifferential.assertNoLeaks(cuda);
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void directBufferAndRowSlice(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(43);
    for (Recipe recipe : RECIPES) {
      QuantConfig c = new QuantConfig(recipe, 64, 4);
      check(cuda, SimdDifferential.copy(SimdDifferential.random(DType.BF16, 32, 512, r), true), c, "direct");
      check(cuda, SimdDifferential.random(DType.BF16, 80, 256, r).rowSlice(16, 64), c, "slice");
    }
  }

  @Test
  void manySmallChunksGiveTheSameBytes() {
    CudaBackend cuda = CudaDifferential.emulatedSmallChunks();
    Random r = new Random(44);
    for (int g : GROUPS) {
      // 4 KiB chunks: one 8-row tile (tile-packed, 256 columns) or one 64-row block (cpu, at least one row unit) each
      check(cuda, SimdDifferential.random(DType.BF16, 45, 256, r), new QuantConfig(Recipe.INT4_TILE_PACKED, g, 4),
          "4 KiB chunks");
      check(cuda, SimdDifferential.random(DType.BF16, 144, 256, r), new QuantConfig(Recipe.INT4_CPU, g, 4),
          "4 KiB chunks");
    }
  }

  /** Both layouts of every golden tinygemm case, and int4-cpu's parts byte for byte torchao's own. */
  @ParameterizedTest
  @MethodSource("targets")
  void goldenTinygemmCases(Target t) throws IOException {
    CudaBackend cuda = t.backend();
    Pattern name = Pattern.compile("tinygemm_int4_\\d+x\\d+_g(\\d+)\\.safetensors");
    List<Path> files;
    try (Stream<Path> s = Files.list(GoldenFiles.dir("torchao-0.19"))) {
      files = s.filter(p -> name.matcher(p.getFileName().toString()).matches()).sorted().toList();
    }
    assertEquals(4, files.size(), files.toString());
    for (Path f : files) {
      Matcher m = name.matcher(f.getFileName().toString());
      assertTrue(m.matches());
      int group = Integer.parseInt(m.group(1));
      try (SafetensorsFile golden = SafetensorsFile.open(f)) {
        Tensor w = golden.read("w");
        Tensor sample = t.sample(w);
        check(cuda, sample, new QuantConfig(Recipe.INT4_TILE_PACKED, group, 4), f.getFileName().toString());
        check(cuda, sample, new QuantConfig(Recipe.INT4_CPU, group, 4), f.getFileName().toString());
        // int4-cpu pads nothing: its parts are the golden file's own (a row sample's are not, so whole tensors only)
        if (sample == w) {
          QuantizedTensor q = cuda.quantize(w, new QuantConfig(Recipe.INT4_CPU, group, 4), GlobalStats.NONE,
              new QuantStats());
          SimdDifferential.assertBytes(golden.read("packed_cpu"), q.part("qdata"), f.getFileName() + " packed_cpu");
          SimdDifferential.assertBytes(golden.read("scale_and_zero"), q.part("scale_and_zero"),
              f.getFileName() + " scale_and_zero");
        }
      }
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void goldenWeights(Target t) throws IOException {
    CudaBackend cuda = t.backend();
    int checked = 0;
    for (SimdDifferential.Golden g : SimdDifferential.goldenWeights()) {
      Tensor w = t.sample(g.w());
      for (Recipe recipe : RECIPES) {
        QuantConfig c = new QuantConfig(recipe, 128, 4);
        if (recipe.kernel().refusal(w.rows(), w.cols(), w.dtype(), c) == null) {
          check(cuda, w, c, g.name());
          checked++;
        }
      }
    }
    assertTrue(checked > 0, "no golden weight fits the int4 recipes");
  }

  @ParameterizedTest
  @MethodSource("targets")
  void nonFiniteInputIsRefusedAsTheReferenceDoes(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(45);
    for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
      // shapes the tile layout does not pad, so the reference's message (of the padded tensor) is the CPU backend's
      Tensor tile = SimdDifferential.random(DType.BF16, 16, 1024, r);
      tile.setFloat(11L * 1024 + 1023, bad);
      CudaDifferential.assertSameRefusal(cuda, tile, new QuantConfig(Recipe.INT4_TILE_PACKED, 32, 4));
      Tensor cpu = SimdDifferential.random(DType.BF16, 80, 256, r);
      cpu.setFloat(70L * 256 + 77, bad);
      CudaDifferential.assertSameRefusal(cuda, cpu, new QuantConfig(Recipe.INT4_CPU, 32, 4));
    }
  }

  /**
   * Shapes and dtypes the recipes refuse (which the planner checks first; the reference backend itself fails
   * later, in its packing) go to the CPU backend: the same refusal as there, stats left alone.
   */
  @ParameterizedTest
  @MethodSource("targets")
  void refusalsAreTheCpuBackends(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(46);
    for (DType d : new DType[] {DType.F32, DType.F16}) {
      for (Recipe recipe : RECIPES) {
        assertSameRefusalAsCpu(cuda, SimdDifferential.random(d, 16, 256, r), new QuantConfig(recipe, 32, 4));
      }
    }
    assertSameRefusalAsCpu(cuda, SimdDifferential.random(DType.BF16, 24, 64, r), new QuantConfig(Recipe.INT4_CPU, 32, 4));
    assertSameRefusalAsCpu(cuda, SimdDifferential.random(DType.BF16, 16, 48, r), new QuantConfig(Recipe.INT4_CPU, 32, 4));
  }

  private static void assertSameRefusalAsCpu(CudaBackend cuda, Tensor rows, QuantConfig c) {
    String why = c.recipe().kernel().refusal(rows.rows(), rows.cols(), rows.dtype(), c);
    assertTrue(why != null, c + " " + rows + " is refused");
    IllegalArgumentException want = assertThrows(IllegalArgumentException.class,
        () -> Backends.cpu().quantize(rows, c, GlobalStats.NONE, new QuantStats()));
    assertEquals(why, want.getMessage());
    QuantStats stats = new QuantStats();
    IllegalArgumentException got = assertThrows(IllegalArgumentException.class,
        () -> cuda.quantize(rows, c, GlobalStats.NONE, stats));
    assertEquals(why, got.getMessage());
    assertEquals(new QuantStats(), stats);
    CudaDifferential.assertNoLeaks(cuda);
  }

  private static void check(CudaBackend cuda, Tensor rows, QuantConfig c, String what) {
    CudaDifferential.assertSameAsReference(cuda, rows, c, what);
  }

}
