package shardquant.kernels.loader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.repack.TinygemmInt4Tensor;
import shardquant.kernels.safetensors.SafetensorsFormatException;
import shardquant.kernels.safetensors.SafetensorsWriter;
import shardquant.kernels.tensor.Tensor;

/** The plain int4 form of {@code shardquant repack --layout plain}: the loader reads its layout, group size and values. */
class LoaderPlainInt4Test {
  private static final String NAME = "model.layers.0.mlp.up_proj.weight";

  @TempDir
  Path tmp;

  @Test
  void readsThePlainFormWithItsGroupSizeAndTheTilePackedValues() throws IOException {
    QuantizedTensor q = LoaderFixtures.quantize(LoaderFixtures.weights(40, 256, DType.BF16, 7),
        new QuantConfig(Recipe.INT4_TILE_PACKED, 64, 4));
    TinygemmInt4Tensor plain = TinygemmInt4Tensor.of(q).repack(Int4Layout.PLAIN);
    Path file = write(plain.parts(), plain.torchaoMetadata());
    try (Checkpoint c = Checkpoint.open(file)) {
      TensorInfo t = c.tensor(NAME);
      assertEquals(Int4Layout.PLAIN, t.layout());
      assertNull(t.config());
      assertTrue(t.quantized() && t.plainInt4());
      assertEquals(64, t.int4GroupSize());
      assertTrue(c.dequantize(NAME, DType.F32).contentEquals(q.dequantize(DType.F32)));
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> c.readQuantized(NAME));
      assertTrue(e.getMessage().contains("plain int4 form"), e::getMessage);
    }
  }

  @Test
  void aPartOfTheWrongShapeIsRefusedNamingIt() throws IOException {
    QuantizedTensor q = LoaderFixtures.quantize(LoaderFixtures.weights(40, 256, DType.BF16, 7),
        new QuantConfig(Recipe.INT4_TILE_PACKED, 64, 4));
    TinygemmInt4Tensor plain = TinygemmInt4Tensor.of(q).repack(Int4Layout.PLAIN);
    Map<String, Tensor> parts = new LinkedHashMap<>(plain.parts());
    parts.put("scale", plain.part("scale").rowSlice(0, 8));
    Path file = write(parts, plain.torchaoMetadata());
    SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> Checkpoint.open(file));
    assertTrue(e.getMessage().contains("_weight_scale") && e.getMessage().contains(NAME), e::getMessage);
  }

  private Path write(Map<String, Tensor> parts, String metadata) throws IOException {
    Map<String, Tensor> stored = new LinkedHashMap<>();
    parts.forEach((part, t) -> stored.put(shardquant.kernels.quant.TorchaoMetadata.storedKey(NAME, part), t));
    Map<String, String> meta = new LinkedHashMap<>();
    meta.put(NAME, metadata);
    meta.put("tensor_names", "[\"" + NAME + "\"]");
    Path file = tmp.resolve("plain.safetensors");
    SafetensorsWriter.write(file, stored, meta);
    return file;
  }
}
