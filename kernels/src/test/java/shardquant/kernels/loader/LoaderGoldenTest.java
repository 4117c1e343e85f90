package shardquant.kernels.loader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.RecipeFormatsGoldenTest;
import shardquant.kernels.quant.TorchaoMetadata;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.SafetensorsWriter;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.tensor.Tensor;

/**
 * Files torchao 0.19 wrote ({@code flatten_tensor_state_dict}, no index) open, list the recipe each
 * tensor was quantized with, and read to what shardquant's own quantization of the golden input gives.
 * Dequantization is checked against torchao's own: the golden cases' parts, stored as each recipe stores
 * them, load and dequantize to the case's {@code dq} bit for bit (the formats files have no dequantized
 * values).
 */
class LoaderGoldenTest {
  private static final String NAME = "model.layers.0.mlp.up_proj.weight";

  @TempDir Path tmp;
  @ParameterizedTest(name = "{0}")
  @CsvSource({
      "format_int4_tile_packed_to_4d_g128, int4-tile-packed, 128, 4",
      "format_8da4w_g32, 8da4w, 32, 4",
      "format_intx_w4_g32, intx-weight-only, 32, 4",
      "format_int8_weight_only, int8-weight-only, 0, 8",
      "format_int8_dyn_act_int8_weight, int8-dynamic, 0, 8"})
  void torchaoFilesOpenAndDequantizeAsShardquantQuantizes(String file, String recipe, int group, int bits)
      throws IOException {
    Path dir = GoldenFiles.dir("torchao-0.19-formats");
    QuantConfig c = new QuantConfig(Recipe.fromCliName(recipe), group, bits);
    int quantized = 0;
    try (SafetensorsFile input = SafetensorsFile.open(dir.resolve("input.safetensors"));
        Checkpoint cp = Checkpoint.open(dir.resolve(file + ".safetensors"))) {
      Set<String> inputNames = input.entries().stream().map(TensorEntry::name).collect(Collectors.toCollection(TreeSet::new));
      assertEquals(inputNames, cp.tensors().stream().map(TensorInfo::name).collect(Collectors.toCollection(TreeSet::new)));
      for (TensorInfo t : cp.tensors()) {
        Tensor w = input.read(t.name());
        assertEquals(w.dtype(), t.dtype(), t.name());
        assertTrue(java.util.Arrays.equals(w.shape(), t.shape()), t.toString());
        if (!t.quantized()) {
          assertNull(t.parts().get(0).dataName());
          assertTrue(w.contentEquals(cp.readPlain(t.name())), t.name());
          continue;
        }
        assertEquals(c, t.config(), t.name());
        QuantizedTensor mine = LoaderFixtures.quantize(w, c);
        QuantizedTensor theirs = cp.readQuantized(t.name());
        mine.parts().forEach((name, part) -> assertTrue(part.contentEquals(theirs.part(name)), t.name() + " " + name));
        long align = c.recipe().kernel().rowAlignment(w.cols(), c);
        long to = Math.min(w.rows(), 3 * align);
        QuantizedTensor rows = cp.readRows(t.name(), align, to);
        LoaderFixtures.quantizeRows(w, c, align, to).parts()
            .forEach((name, part) -> assertTrue(part.contentEquals(rows.part(name)), t.name() + " rows " + name));
        quantized++;
      }
    }
    assertEquals(14, quantized);
  }

  /**
   * torchao's parts of every golden case a recipe stores, in that recipe's checkpoint form, dequantize through
   * the loader to torchao's {@code dq}: tinygemm cases as int4-cpu ({@code packed_cpu}) and, where K is
   * 1024, as int4-tile-packed ({@code packed_tc_ikt8}, torchao's own padding-free tile layout); symmetric
   * groupwise and asymmetric int4 affine cases as 8da4w and intx-weight-only; symmetric per-channel int8
   * as int8-weight-only and int8-dynamic; NF4 as nf4. Zero points are stored in the recipe's int8 (every
   * value fits) and NF4's mean as the 0-dim tensor torchao holds.
   */
  @Test
  void torchaosPartsDequantizeToTorchaosDq() throws IOException {
    Path dir = GoldenFiles.dir("torchao-0.19");
    JsonNode index = new ObjectMapper().readTree(dir.resolve("index.json").toFile());
    Map<String, Integer> checked = new TreeMap<>();
    for (JsonNode c : index.path("cases")) {
      String kind = c.path("kind").asText();
      String variant = c.path("variant").asText("");
      if (kind.equals("qat_fake_quant")) {
        continue; // fake quantization stores nothing a recipe writes
      }
      try (SafetensorsFile g = SafetensorsFile.open(dir.resolve(c.path("file").asText()))) {
        Tensor w = g.read("w");
        Tensor dq = g.read("dq");
        String what = c.path("file").asText();
        switch (kind) {
          case "tinygemm_int4" -> {
            int group = c.path("group_size").asInt();
            checkDq(new QuantConfig(Recipe.INT4_CPU, group, 4), w,
                Map.of("qdata", g.read("packed_cpu"), "scale_and_zero", g.read("scale_and_zero")), dq, what, checked);
            if (w.cols() % 1024 == 0) {
              checkDq(new QuantConfig(Recipe.INT4_TILE_PACKED, group, 4), w,
                  Map.of("qdata", g.read("packed_tc_ikt8"), "scale_and_zero", g.read("scale_and_zero")), dq, what, checked);
            }
          }
          case "affine" -> {
            if (variant.equals("int4_sym_group32") || variant.equals("int4_asym_group64")) {
              int group = c.path("block_size").get(1).asInt();
              Map<String, Tensor> parts = Map.of("qdata", g.read("q"), "scale", g.read("scale"),
                  "zero_point", int8(g.read("zero_point")));
              checkDq(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, group, 4), w, parts, dq, what, checked);
              checkDq(new QuantConfig(Recipe.INTX_WEIGHT_ONLY, group, 4), w, parts, dq, what, checked);
            } else if (variant.startsWith("int8_sym_per_channel")) {
              Map<String, Tensor> parts = Map.of("zero_point", int8(g.read("zero_point")).reshape(w.rows(), 1), "qdata", g.read("q"),
                  "scale", g.read("scale").reshape(w.rows(), 1));
              checkDq(new QuantConfig(Recipe.INT8_WEIGHT_ONLY, 0, 8), w, parts, dq, what, checked);
              checkDq(new QuantConfig(Recipe.INT8_DYNAMIC, 0, 8), w, parts, dq, what, checked);
            }
          }
          case "nf4" -> checkDq(QuantConfig.of(Recipe.NF4), w, Map.of("quantized_data", g.read("quantized_data"),
              "scaler_mean", g.read("scaler_mean").reshape(), "quantization_factor", g.read("quantization_factor"),
              "quantized_scalers", g.read("quantized_scalers"), "nf4", g.read("nf4")), dq, what, checked);
          default -> { }
        }
      }
    }
    assertEquals(Map.of("8da4w", 6, "int4-cpu", 4, "int4-tile-packed", 1, "int8-dynamic", 6, "int8-weight-only", 6,
        "intx-weight-only", 6, "nf4", 6), checked);
  }

  /** {@code parts} stored as recipe {@code c} stores a tensor shaped like {@code w} load and dequantize to {@code dq}. */
  private void checkDq(QuantConfig c, Tensor w, Map<String, Tensor> parts, Tensor dq, String what,
      Map<String, Integer> checked) throws IOException {
    Map<String, Tensor> stored = new LinkedHashMap<>();
    for (PartSpec spec : c.recipe().kernel().parts(w.rows(), w.cols(), w.dtype(), c)) {
      stored.put(TorchaoMetadata.storedKey(NAME, spec.name()), parts.get(spec.name()));
    }
    Path file = tmp.resolve(c.recipe().cliName() + "-" + what);
    SafetensorsWriter.write(file, stored, Map.of(NAME, TorchaoMetadata.quantized(c, w.shape(), w.dtype()),
        "tensor_names", TorchaoMetadata.pythonJson(new ObjectMapper().createArrayNode().add(NAME)), "format", "pt"));
    try (Checkpoint cp = Checkpoint.open(file)) {
      assertEquals(c, cp.tensor(NAME).config(), what);
      RecipeFormatsGoldenTest.assertBytes(dq, cp.dequantize(NAME, dq.dtype()), c + " " + what + ": torchao's dq");
    }
    checked.merge(c.recipe().cliName(), 1, Integer::sum);
  }

  /** An integer zero point as int8, the recipes' dtype; every golden zero point fits. */
  private static Tensor int8(Tensor zero) {
    return Tensor.fromInts(DType.I8, zero.shape(), zero.toInts());
  }

  @Test
  void aPlainSafetensorsFileListsEveryTensorAsPlain() throws IOException {
    Path input = GoldenFiles.dir("torchao-0.19-formats").resolve("input.safetensors");
    try (Checkpoint cp = Checkpoint.open(input); SafetensorsFile f = SafetensorsFile.open(input)) {
      assertEquals(f.entries().stream().map(TensorEntry::name).toList(), cp.tensors().stream().map(TensorInfo::name).toList());
      for (TensorInfo t : cp.tensors()) {
        assertEquals("plain", t.recipeName(), t.name());
        assertTrue(f.read(t.name()).contentEquals(cp.readPlain(t.name())), t.name());
      }
    }
  }
}
