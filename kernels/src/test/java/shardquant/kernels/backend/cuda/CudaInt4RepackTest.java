package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.backend.cuda.CudaDifferential.Target;
import shardquant.kernels.backend.simd.SimdDifferential;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.repack.TinygemmInt4Tensor;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@code int4_unpack} (src/main/cuda/int4_unpack.cu) through {@link CudaInt4Repack} against the Java
 * reference ({@link TinygemmInt4Tensor#repack}, {@link TinygemmInt4Tensor#dequantize}), byte for byte: every
 * conversion between the tile-packed, cpu and plain forms and back, for every group size and shapes with
 * N padded to 8, N not a multiple of 16 (no cpu form), K below, at and above 1024 and not a multiple of the
 * group size (tile-packed only); dequantization of every form to bf16, f16 and f32; PyTorch's own golden
 * tiled and cpu bytes and torchao's checkpoint; chunked uploads; and the reference's refusals (foreign
 * padding, plain codes out of range, shapes) with its words. Emulated shapes stay at or below 128 rows.
 */
class CudaInt4RepackTest {
  private static final int[][] SHAPES = {{64, 256}, {100, 512}, {16, 1152}, {8, 1024}, {128, 160}};
  private static final int[][] GPU_SHAPES = {{208, 768}, {1024, 4096}, {4104, 1100}};
  private static final int[] GROUPS = {32, 64, 128, 256};
  private static final DType[] OUT = {DType.BF16, DType.F16, DType.F32};

  static List<Target> targets() {
    return CudaDifferential.targets();
  }

  static TinygemmInt4Tensor tilePacked(int n, int k, int g, long seed) {
    Tensor w = SimdDifferential.random(DType.BF16, n, k, new Random(seed));
    QuantConfig c = new QuantConfig(Recipe.INT4_TILE_PACKED, g, 4);
    return TinygemmInt4Tensor.of(Recipe.INT4_TILE_PACKED.kernel().quantize(w, c, GlobalStats.NONE, new QuantStats()));
  }

  private static Set<Int4Layout> layoutsFor(TinygemmInt4Tensor t) {
    Set<Int4Layout> out = EnumSet.noneOf(Int4Layout.class);
    for (Int4Layout l : Int4Layout.values()) {
      if (t.refusal(l) == null) {
        out.add(l);
      }
    }
    return out;
  }

  @ParameterizedTest
  @MethodSource("targets")
  void everyConversionGivesTheReferenceBytes(Target t) {
    CudaBackend cuda = t.backend();
    List<int[]> shapes = new ArrayList<>(List.of(SHAPES));
    if (t == Target.GPU) {
      shapes.addAll(List.of(GPU_SHAPES));
    }
    for (int[] s : shapes) {
      for (int g : GROUPS) {
        checkConversions(cuda, tilePacked(s[0], s[1], g, 31L * s[0] + s[1] + g));
      }
    }
  }

  /** Rows of exactly one group (K = g): scale and zero [N, 1] in the cpu and plain forms, K padded to 1024 when tile-packed. */
  @ParameterizedTest
  @MethodSource("targets")
  void oneGroupRowsConvert(Target t) {
    CudaBackend cuda = t.backend();
    for (int g : GROUPS) {
      for (int n : new int[] {64, 40}) {
        checkConversions(cuda, tilePacked(n, g, g, 17L * n + g));
      }
    }
  }

  /** Every conversion among the forms {@code tile} takes, each against the reference's, and each form's values. */
  static void checkConversions(CudaBackend cuda, TinygemmInt4Tensor tile) {
    CudaInt4Repack repack = cuda.int4Repack();
    Set<Int4Layout> layouts = layoutsFor(tile);
    assertSame(tile, repack.repack(tile, Int4Layout.TILE_PACKED));
    long before = CudaDifferential.launches(cuda);
    for (Int4Layout via : layouts) {
      TinygemmInt4Tensor want = tile.repack(via);
      TinygemmInt4Tensor got = repack.repack(tile, via);
      assertSameParts(want, got, tile + " -> " + via.cliName());
      assertSameParts(tile, repack.repack(got, Int4Layout.TILE_PACKED), tile + " -> " + via.cliName() + " -> tile-packed");
      for (Int4Layout third : layouts) {
        assertSameParts(want.repack(third), repack.repack(want, third), tile + " " + via.cliName() + " -> " + third.cliName());
      }
      for (DType out : via == Int4Layout.TILE_PACKED ? OUT : new DType[] {DType.BF16}) {
        SimdDifferential.assertBytes(want.dequantize(out), repack.dequantize(want, out),
            tile + " " + via.cliName() + " dequantized to " + out.torchName());
      }
    }
    for (Int4Layout refused : EnumSet.complementOf(EnumSet.copyOf(layouts))) {
      assertSameRefusal(() -> tile.repack(refused), () -> repack.repack(tile, refused));
    }
    assertTrue(CudaDifferential.launches(cuda) > before || before < 0, tile + ": no kernel ran");
    CudaDifferential.assertNoLeaks(cuda);
  }

  @Test
  void manySmallChunksGiveTheSameBytes() {
    // 4 KiB staging buffers: every part takes several chunks through both buffers
    checkConversions(CudaDifferential.emulatedSmallChunks(), tilePacked(64, 1536, 64, 5));
  }

  @ParameterizedTest
  @MethodSource("targets")
  void edgeRowsConvertAndDequantize(Target t) {
    CudaBackend cuda = t.backend();
    // zeros, huge, tiny, subnormal... rows: scales and zeros at the ends of bf16 and beyond f16's range
    Tensor w = SimdDifferential.edgeRows(DType.BF16, 256, new Random(7));
    w = w.resized(16, 256); // 15 edge rows and a zero row: a cpu form exists
    for (int g : GROUPS) {
      QuantConfig c = new QuantConfig(Recipe.INT4_TILE_PACKED, g, 4);
      checkConversions(cuda, TinygemmInt4Tensor.of(Recipe.INT4_TILE_PACKED.kernel().quantize(w, c, GlobalStats.NONE,
          new QuantStats())));
    }
  }

  @ParameterizedTest
  @MethodSource("targets")
  void int4CpuQuantizationConverts(Target t) {
    CudaBackend cuda = t.backend();
    Tensor w = SimdDifferential.random(DType.BF16, 80, 512, new Random(3));
    for (int g : GROUPS) {
      QuantConfig c = new QuantConfig(Recipe.INT4_CPU, g, 4);
      TinygemmInt4Tensor cpu = TinygemmInt4Tensor.of(Recipe.INT4_CPU.kernel().quantize(w, c, GlobalStats.NONE,
          new QuantStats()));
      for (Int4Layout to : Int4Layout.values()) {
        assertSameParts(cpu.repack(to), cuda.int4Repack().repack(cpu, to), "int4-cpu group " + g + " -> " + to.cliName());
      }
      for (DType out : OUT) {
        SimdDifferential.assertBytes(cpu.dequantize(out), cuda.int4Repack().dequantize(cpu, out), "int4-cpu " + out);
      }
    }
    CudaDifferential.assertNoLeaks(cuda);
  }

  @ParameterizedTest
  @MethodSource("targets")
  void goldenTinygemmFiles(Target t) throws IOException {
    CudaBackend cuda = t.backend();
    List<Path> files = new ArrayList<>();
    try (DirectoryStream<Path> dir = Files.newDirectoryStream(GoldenFiles.dir("torchao-0.19"), "tinygemm_int4_*.safetensors")) {
      dir.forEach(files::add);
    }
    files.sort(null);
    assertEquals(4, files.size(), files.toString());
    int checked = 0;
    for (Path f : files) {
      try (SafetensorsFile st = SafetensorsFile.open(f)) {
        Tensor q = st.read("q");
        if (t == Target.EMULATED && q.rows() > CudaDifferential.EMULATED_ROWS) {
          continue;
        }
        int g = Math.toIntExact(q.cols() / st.read("scale").cols());
        Map<String, Tensor> parts = new LinkedHashMap<>();
        parts.put("qdata", st.read("packed_tc_ikt8"));
        parts.put("scale_and_zero", st.read("scale_and_zero"));
        TinygemmInt4Tensor tile = new TinygemmInt4Tensor(Int4Layout.TILE_PACKED, g, q.shape(), parts);
        String what = f.getFileName().toString();
        if (st.has("packed_cpu")) {
          TinygemmInt4Tensor cpu = cuda.int4Repack().repack(tile, Int4Layout.CPU);
          SimdDifferential.assertBytes(st.read("packed_cpu"), cpu.part("qdata"), what + " packed_cpu");
          SimdDifferential.assertBytes(st.read("scale_and_zero"), cpu.part("scale_and_zero"), what + " scale_and_zero");
          // the golden tiled bytes lack torchao's K padding to 1024, which converting to tile-packed adds
          assertSameParts(cpu.repack(Int4Layout.TILE_PACKED), cuda.int4Repack().repack(cpu, Int4Layout.TILE_PACKED),
              what + " cpu -> tile-packed");
        }
        TinygemmInt4Tensor plain = cuda.int4Repack().repack(tile, Int4Layout.PLAIN);
        int[] codes = q.toInts();
        for (int i = 0; i < codes.length; i++) {
          codes[i] -= 8;
        }
        SimdDifferential.assertBytes(Tensor.fromInts(DType.I8, q.shape(), codes), plain.part("qdata"), what + " q - 8");
        SimdDifferential.assertBytes(st.read("scale"), plain.part("scale"), what + " scale");
        SimdDifferential.assertBytes(st.read("zero"), plain.part("zero_point"), what + " zero");
        SimdDifferential.assertBytes(st.read("dq"), cuda.int4Repack().dequantize(plain, DType.BF16), what + " plain dq");
        SimdDifferential.assertBytes(st.read("dq"), cuda.int4Repack().dequantize(tile, DType.BF16), what + " tiled dq");
        assertSameParts(plain.repack(Int4Layout.TILE_PACKED), cuda.int4Repack().repack(plain, Int4Layout.TILE_PACKED),
            what + " plain -> tile-packed");
        checked++;
      }
    }
    assertTrue(checked >= 3, "golden files checked: " + checked);
    CudaDifferential.assertNoLeaks(cuda);
  }

  @ParameterizedTest
  @MethodSource("targets")
  void torchaoCheckpointRoundTrips(Target t) throws IOException {
    CudaBackend cuda = t.backend();
    Path file = GoldenFiles.dir("torchao-0.19-formats").resolve("format_int4_tile_packed_to_4d_g128.safetensors");
    com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
    int tensors = 0;
    try (SafetensorsFile st = SafetensorsFile.open(file)) {
      for (String name : json.readValue(st.metadata().get("tensor_names"), String[].class)) {
        com.fasterxml.jackson.databind.JsonNode meta = json.readTree(st.metadata().get(name));
        if (!meta.get("_type").asText().equals(Recipe.INT4_TILE_PACKED.torchaoType())) {
          continue;
        }
        long[] shape = json.treeToValue(meta.get("_data").get("shape"), long[].class);
        if (t == Target.EMULATED && shape[0] > CudaDifferential.EMULATED_ROWS) {
          continue;
        }
        String prefix = name.substring(0, name.length() - "weight".length()) + "_weight_";
        Map<String, Tensor> parts = new LinkedHashMap<>();
        for (String part : Recipe.INT4_TILE_PACKED.dataNames()) {
          parts.put(part, st.read(prefix + part));
        }
        int g = meta.get("_data").get("block_size").get(1).asInt();
        TinygemmInt4Tensor tile = new TinygemmInt4Tensor(Int4Layout.TILE_PACKED, g, shape, parts);
        for (Int4Layout via : List.of(Int4Layout.CPU, Int4Layout.PLAIN)) {
          TinygemmInt4Tensor other = cuda.int4Repack().repack(tile, via);
          assertSameParts(tile.repack(via), other, name + " -> " + via.cliName());
          assertSameParts(tile, cuda.int4Repack().repack(other, Int4Layout.TILE_PACKED), name + " via " + via.cliName());
        }
        SimdDifferential.assertBytes(tile.dequantize(DType.BF16), cuda.int4Repack().dequantize(tile, DType.BF16), name);
        tensors++;
      }
    }
    assertEquals(t == Target.EMULATED ? 4 : 14, tensors);
    CudaDifferential.assertNoLeaks(cuda);
  }

  @ParameterizedTest
  @MethodSource("targets")
  void refusesAsTheReferenceDoes(Target t) {
    CudaBackend cuda = t.backend();
    CudaInt4Repack repack = cuda.int4Repack();
    TinygemmInt4Tensor tile = tilePacked(40, 192, 32, 11); // N' = 40, K' = 1024: groups 6..31 are padding

    // a padding code that is not torchao's: only tile-packed can hold it
    int[] words = tile.part("qdata").toInts();
    words[words.length - 1] ^= 0x1;
    TinygemmInt4Tensor badCode = withPart(tile, "qdata", Tensor.fromInts(DType.I32, tile.part("qdata").shape(), words));
    // a padded group's scale that is not the padding's
    Tensor sz = copy(tile.part("scale_and_zero"));
    sz.setFloat(sz.numel() - 2, 3.0f);
    TinygemmInt4Tensor badScale = withPart(tile, "scale_and_zero", sz);
    for (TinygemmInt4Tensor bad : List.of(badCode, badScale)) {
      assertSameRefusal(() -> bad.repack(Int4Layout.PLAIN), () -> repack.repack(bad, Int4Layout.PLAIN));
      // dequantizing reads the real weight only, padding unchecked, as the reference
      SimdDifferential.assertBytes(bad.dequantize(DType.BF16), repack.dequantize(bad, DType.BF16), "foreign padding dq");
    }
    // N % 16 != 0: no cpu form; K % g != 0: tile-packed only
    assertSameRefusal(() -> tile.repack(Int4Layout.CPU), () -> repack.repack(tile, Int4Layout.CPU));
    TinygemmInt4Tensor odd = tilePacked(16, 200, 64, 12);
    assertSameRefusal(() -> odd.repack(Int4Layout.PLAIN), () -> repack.repack(odd, Int4Layout.PLAIN));

    // plain codes outside -8..7
    TinygemmInt4Tensor plain = tilePacked(16, 256, 32, 13).repack(Int4Layout.PLAIN);
    Tensor q = copy(plain.part("qdata"));
    q.setInt(17 * 3, 8);
    TinygemmInt4Tensor badPlain = withPart(plain, "qdata", q);
    assertSameRefusal(() -> badPlain.repack(Int4Layout.CPU), () -> repack.repack(badPlain, Int4Layout.CPU));

    // parts of the wrong shape: the reference's words
    TinygemmInt4Tensor shortSz = withPart(plain, "scale", Tensor.allocate(DType.BF16, 16, 4));
    assertSameRefusal(() -> shortSz.repack(Int4Layout.TILE_PACKED), () -> repack.repack(shortSz, Int4Layout.TILE_PACKED));
    TinygemmInt4Tensor wrongWords = withPart(tile, "qdata", Tensor.allocate(DType.I32, 5, 4, 32, 4));
    assertSameRefusal(() -> wrongWords.repack(Int4Layout.PLAIN), () -> repack.repack(wrongWords, Int4Layout.PLAIN));
    CudaDifferential.assertNoLeaks(cuda);
  }

  private static TinygemmInt4Tensor withPart(TinygemmInt4Tensor t, String name, Tensor part) {
    Map<String, Tensor> parts = new LinkedHashMap<>(t.parts());
    parts.put(name, part);
    return new TinygemmInt4Tensor(t.layout(), t.groupSize(), t.shape(), parts);
  }

  private static Tensor copy(Tensor t) {
    ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(t.byteSize())).order(ByteOrder.LITTLE_ENDIAN);
    b.put(t.bytes()).flip();
    return Tensor.of(t.dtype(), t.shape(), b);
  }

  static void assertSameRefusal(org.junit.jupiter.api.function.Executable reference,
      org.junit.jupiter.api.function.Executable cuda) {
    IllegalArgumentException want = assertThrows(IllegalArgumentException.class, reference);
    IllegalArgumentException got = assertThrows(IllegalArgumentException.class, cuda);
    assertEquals(want.getMessage(), got.getMessage());
  }

  static void assertSameParts(TinygemmInt4Tensor want, TinygemmInt4Tensor got, String what) {
    assertEquals(want.layout(), got.layout(), what);
    assertEquals(java.util.Arrays.toString(want.shape()), java.util.Arrays.toString(got.shape()), what);
    assertEquals(want.groupSize(), got.groupSize(), what);
    assertEquals(List.copyOf(want.parts().keySet()), List.copyOf(got.parts().keySet()), what);
    want.parts().forEach((name, p) -> SimdDifferential.assertBytes(p, got.part(name), what + ": " + name));
    assertEquals(want.torchaoMetadata(), got.torchaoMetadata(), what);
  }
}
