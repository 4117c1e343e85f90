package shardquant.kernels.loader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
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
import shardquant.kernels.quant.TorchaoMetadata;
import shardquant.kernels.safetensors.SafetensorsFormatException;
import shardquant.kernels.safetensors.SafetensorsWriter;
import shardquant.kernels.tensor.Tensor;

/** Listing, streaming and bad requests on checkpoints written as the Spark job writes them. */
class LoaderCheckpointTest {
  private static final String UP = "model.layers.0.mlp.up_proj.weight";
  private static final String DOWN = "model.layers.0.mlp.down_proj.weight";
  private static final String EMBED = "model.embed_tokens.weight";
  private static final String NORM = "model.layers.0.input_layernorm.weight";
  private static final String FILE1 = "model-00001-of-00002.safetensors";

  @TempDir Path dir;

  static Stream<Arguments> recipes() {
    return Stream.of(
        Arguments.of(new QuantConfig(Recipe.INT4_TILE_PACKED, 64, 4), 24, 256, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT4_CPU, 32, 4), 32, 128, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, 32, 4), 5, 64, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 32, 2), 5, 64, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 64, 8), 5, 128, DType.F32),
        Arguments.of(new QuantConfig(Recipe.INT8_WEIGHT_ONLY, 0, 8), 5, 24, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT8_DYNAMIC, 0, 8), 5, 24, DType.F16),
        Arguments.of(new QuantConfig(Recipe.NF4, 64, 4), 64, 256, DType.BF16),
        // rows of one group (K = g): scale and zero point [N, 1], scale_and_zero [1, N, 2] or K padded to 1024
        Arguments.of(new QuantConfig(Recipe.INT4_TILE_PACKED, 256, 4), 24, 256, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT4_CPU, 64, 4), 80, 64, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, 32, 4), 5, 32, DType.BF16),
        Arguments.of(new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 128, 3), 5, 128, DType.F16),
        Arguments.of(new QuantConfig(Recipe.NF4, 64, 4), 256, 64, DType.F32));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("recipes")
  void listsEachTensorWithItsRecipeShapeDtypeAndStoredParts(QuantConfig c, int rows, int cols, DType dtype)
      throws IOException {
    Tensor w = LoaderFixtures.weights(rows, cols, dtype, 7);
    LoaderFixtures.writeOutputDir(dir, c, LoaderFixtures.model(w, c), 2);
    try (Checkpoint cp = Checkpoint.open(dir)) {
      List<TensorInfo> all = cp.tensors();
      assertEquals(List.of(EMBED, UP, NORM, DOWN), all.stream().map(TensorInfo::name).toList());
      assertEquals(List.of("plain", c.recipe().cliName(), "plain", c.recipe().cliName()),
          all.stream().map(TensorInfo::recipeName).toList());
      TensorInfo up = cp.tensor(UP);
      assertEquals(c, up.config());
      assertEquals(dtype, up.dtype());
      assertEquals(Arrays.toString(w.shape()), Arrays.toString(up.shape()));
      assertEquals(dir.resolve(FILE1), up.file());
      List<PartSpec> specs = c.recipe().kernel().parts(rows, cols, dtype, c);
      assertEquals(specs.size(), up.parts().size());
      for (int i = 0; i < specs.size(); i++) {
        TensorInfo.StoredPart p = up.parts().get(i);
        assertEquals(specs.get(i).name(), p.dataName());
        assertEquals("model.layers.0.mlp.up_proj._weight_" + specs.get(i).name(), p.key());
        assertEquals(specs.get(i).dtype(), p.dtype());
        assertTrue(Arrays.equals(specs.get(i).shape(), p.shape()), p.toString());
      }
      TensorInfo norm = cp.tensor(NORM);
      assertNull(norm.config());
      assertEquals(List.of(new TensorInfo.StoredPart(null, NORM, dtype, new long[] {24})), norm.parts());
      assertEquals(dir.resolve("model-00002-of-00002.safetensors"), cp.tensor(DOWN).file());
    }
    try (Checkpoint one = Checkpoint.open(dir.resolve(FILE1))) {
      assertEquals(List.of(EMBED, UP), one.tensors().stream().map(TensorInfo::name).toList());
      assertEquals(c, one.tensor(UP).config());
    }
  }

  @Test
  void streamsEveryTensorWithAtMostOneFileOpen() throws IOException {
    QuantConfig c = QuantConfig.of(Recipe.INT8_DYN_ACT_INT4_WEIGHT);
    LoaderFixtures.writeOutputDir(dir, c, LoaderFixtures.model(LoaderFixtures.weights(9, 64, DType.BF16, 3), c), 1);
    List<LoadedTensor> loaded = new ArrayList<>();
    List<Long> open = new ArrayList<>();
    try (Checkpoint cp = Checkpoint.open(dir)) {
      try (Stream<LoadedTensor> s = cp.stream()) {
        s.forEach(t -> {
          open.add(openFilesUnder(dir));
          loaded.add(t);
        });
      }
      assertEquals(List.of(1L, 1L, 1L, 1L), open, "the file of the tensor in hand, and no other, is open");
      assertEquals(0, openFilesUnder(dir), "the stream closed its last file");
      try (Stream<LoadedTensor> s = cp.stream()) {
        assertEquals(EMBED, s.findFirst().orElseThrow().name());
      }
      assertEquals(0, openFilesUnder(dir), "closing a stream part-way closes its file");
    }
    assertEquals(List.of(EMBED, UP, NORM, DOWN), loaded.stream().map(LoadedTensor::name).toList());
    try (Checkpoint reference = Checkpoint.open(dir)) {
      for (LoadedTensor t : loaded) {
        if (t.isQuantized()) {
          QuantizedTensor q = reference.readQuantized(t.name());
          q.parts().forEach((n, part) -> assertTrue(part.contentEquals(t.quantized().part(n)), t.name() + " " + n));
          assertTrue(q.dequantize(DType.F32).contentEquals(t.dequantize(DType.F32)), t.name());
          assertThrows(IllegalStateException.class, t::plain);
        } else {
          assertTrue(reference.readPlain(t.name()).contentEquals(t.plain()), t.name());
          assertTrue(reference.dequantize(t.name(), DType.F32).contentEquals(t.dequantize(DType.F32)), t.name());
          assertThrows(IllegalStateException.class, t::quantized);
        }
      }
    }
  }

  @Test
  void badRequestsNameTheFileAndTensor() throws IOException {
    QuantConfig c = QuantConfig.of(Recipe.INT4_TILE_PACKED);
    LoaderFixtures.writeOutputDir(dir, c, LoaderFixtures.model(LoaderFixtures.weights(20, 128, DType.BF16, 3), c), 2);
    Checkpoint cp = Checkpoint.open(dir);
    String file = dir.resolve(FILE1).toString();
    assertMessage(assertThrows(IllegalArgumentException.class, () -> cp.readQuantized("model.layers.9.weight")),
        dir.toString(), "no tensor 'model.layers.9.weight'");
    assertMessage(assertThrows(IllegalArgumentException.class, () -> cp.tensor("model.layers.0.mlp.up_proj._weight_qdata")),
        "stored part of tensor '" + UP + "'");
    assertMessage(assertThrows(IllegalArgumentException.class, () -> cp.readRows(UP, 16, 24)), file, UP, "[16, 24)",
        "[0, 20)");
    assertMessage(assertThrows(IllegalArgumentException.class, () -> cp.readRows(UP, -8, 8)), file, UP, "[-8, 8)");
    assertMessage(assertThrows(IllegalArgumentException.class, () -> cp.dequantizeRows(UP, 5, 5, DType.F32)), file, UP);
    assertMessage(assertThrows(IllegalArgumentException.class, () -> cp.dequantizeRows(EMBED, 10, 17, DType.F32)), file,
        EMBED, "[0, 16)");
    assertMessage(assertThrows(IllegalArgumentException.class, () -> cp.readRows(UP, 3, 8)), file, UP, "[0, 8)",
        "dequantizeRows");
    assertMessage(assertThrows(IllegalArgumentException.class, () -> cp.readQuantized(EMBED)), file, EMBED, "readPlain");
    assertMessage(assertThrows(IllegalArgumentException.class, () -> cp.readPlain(UP)), file, UP, "readQuantized");
    assertTrue(LoaderFixtures.weights(16, 8, DType.BF16, 1).rowSlice(3, 9)
        .contentEquals(cp.dequantizeRows(EMBED, 3, 9, DType.BF16)), "plain rows read as they are");
    cp.close();
    cp.close();
    assertThrows(IllegalStateException.class, () -> cp.readQuantized(UP));
  }

  @Test
  void mislabeledCheckpointsAreRefusedAtOpen() throws IOException {
    QuantConfig c = new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 32, 4);
    LoaderFixtures.writeOutputDir(dir, c, LoaderFixtures.model(LoaderFixtures.weights(4, 64, DType.BF16, 3), c), 2);
    Path index = dir.resolve(Checkpoint.INDEX);
    String good = Files.readString(index);

    Files.writeString(index, good.replace("\"bits\":4", "\"bits\":3"));
    assertMessage(assertThrows(SafetensorsFormatException.class, () -> Checkpoint.open(dir)), index.toString(), UP,
        "bits 3", "bits 4");

    Files.writeString(index, good.replace("\"model.layers.0.mlp.up_proj._weight_scale\":\"" + FILE1,
        "\"model.layers.0.mlp.up_proj._weight_scale\":\"model-00002-of-00002.safetensors"));
    assertMessage(assertThrows(SafetensorsFormatException.class, () -> Checkpoint.open(dir)), UP, "_weight_scale");

    Files.delete(index);
    assertMessage(assertThrows(SafetensorsFormatException.class, () -> Checkpoint.open(dir)), Checkpoint.INDEX);

    // torchao metadata that names a type, or a shape, no recipe stores.
    Tensor w = LoaderFixtures.weights(4, 64, DType.BF16, 3);
    QuantizedTensor q = LoaderFixtures.quantize(w, c);
    String meta = TorchaoMetadata.quantized(c, w.shape(), w.dtype());
    Path f = dir.resolve("bad.safetensors");
    write(f, q, meta.replace("IntxUnpackedToInt8Tensor", "Float8Tensor"));
    assertMessage(assertThrows(SafetensorsFormatException.class, () -> Checkpoint.open(f)), f.toString(), UP, "Float8Tensor");
    write(f, q, meta.replace("\"block_size\": [1, 32]", "\"block_size\": [1, 64]"));
    assertMessage(assertThrows(SafetensorsFormatException.class, () -> Checkpoint.open(f)), f.toString(), UP,
        "_weight_scale", "[4, 1]", "[4, 2]");
    write(f, q, meta.replace("int4", "int9"));
    assertMessage(assertThrows(SafetensorsFormatException.class, () -> Checkpoint.open(f)), UP, "matches none");
  }

  private static void write(Path f, QuantizedTensor q, String metadata) throws IOException {
    Map<String, Tensor> stored = new LinkedHashMap<>();
    q.parts().forEach((name, t) -> stored.put(shardquant.kernels.quant.TorchaoMetadata.storedKey(UP, name), t));
    SafetensorsWriter.write(f, stored, Map.of(UP, metadata, "tensor_names", "[\"" + UP + "\"]"));
  }

  private static void assertMessage(Exception e, String... parts) {
    for (String p : parts) {
      assertTrue(e.getMessage().contains(p), "'" + p + "' missing from: " + e.getMessage());
    }
  }

  /** File descriptors of this process open on files under {@code dir} (Linux's /proc). */
  private static long openFilesUnder(Path dir) {
    Path fds = Path.of("/proc/self/fd");
    Assumptions.assumeTrue(Files.isDirectory(fds), "needs /proc/self/fd");
    long n = 0;
    try (Stream<Path> s = Files.list(fds)) {
      Path real = dir.toRealPath();
      for (Path fd : s.toList()) {
        try {
          if (Files.readSymbolicLink(fd).startsWith(real)) {
            n++;
          }
        } catch (IOException e) {
          // closed while listing
        }
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    return n;
  }
}
