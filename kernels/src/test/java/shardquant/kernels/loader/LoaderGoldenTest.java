package shardquant.kernels.loader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.tensor.Tensor;

/**
 * Files torchao 0.19 wrote ({@code flatten_tensor_state_dict}, no index) open, list the recipe each
 * tensor was quantized with, and read and dequantize to what shardquant's own quantization of the
 * golden input gives.
 */
class LoaderGoldenTest {
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
        for (DType out : new DType[] {DType.F32, DType.BF16}) {
          assertTrue(mine.dequantize(out).contentEquals(cp.dequantize(t.name(), out)), t.name() + " to " + out);
        }
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
