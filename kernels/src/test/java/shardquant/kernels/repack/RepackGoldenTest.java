package shardquant.kernels.repack;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.RecipeFormatsGoldenTest;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.tensor.Tensor;

/**
 * Repacking PyTorch's own tiled output: the golden {@code packed_tc_ikt8} with its {@code scale_and_zero},
 * converted to the cpu layout, gives the golden {@code packed_cpu} (made by PyTorch from the same codes),
 * and converted to the plain form gives the golden codes minus 8, {@code scale} and {@code zero}, and
 * dequantizes to torchao's golden {@code dq}. The golden tiled tensors are packed without torchao's K
 * padding to 1024, which the tile-packed reader takes as zero padding of width 0. And every tensor of
 * torchao's own {@code Int4TilePackedTo4dTensor} checkpoint comes back byte for byte from the cpu and
 * plain forms, its padding included.
 */
class RepackGoldenTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String PACKED_CPU = "packed_cpu";

  @TestFactory
  Stream<DynamicTest> tinygemmInt4Files() throws IOException {
    Path golden = GoldenFiles.dir("torchao-0.19");
    List<Path> files = new ArrayList<>();
    try (DirectoryStream<Path> dir = Files.newDirectoryStream(golden, "tinygemm_int4_*.safetensors")) {
      dir.forEach(files::add);
    }
    files.sort(null);
    assertEquals(4, files.size(), "tinygemm_int4 golden files in " + golden + ": " + files);
    List<Path> withCpu = new ArrayList<>();
    for (Path f : files) {
      try (SafetensorsFile st = SafetensorsFile.open(f)) {
        if (st.has(PACKED_CPU)) {
          withCpu.add(f);
        }
      }
    }
    // every golden case has N % 16 == 0, so PyTorch packed each for the CPU: the conversion is checked on all
    assertEquals(files, withCpu, "golden files with " + PACKED_CPU);
    return files.stream().map(f -> DynamicTest.dynamicTest(f.getFileName().toString(), () -> check(f)));
  }

  @Test
  void torchaoTilePackedCheckpointRoundTrips() throws IOException {
    Path file = GoldenFiles.dir("torchao-0.19-formats").resolve("format_int4_tile_packed_to_4d_g128.safetensors");
    int tensors = 0;
    try (SafetensorsFile st = SafetensorsFile.open(file)) {
      for (String name : JSON.readValue(st.metadata().get("tensor_names"), String[].class)) {
        JsonNode meta = JSON.readTree(st.metadata().get(name));
        if (!meta.get("_type").asText().equals(Recipe.INT4_TILE_PACKED.torchaoType())) {
          continue;
        }
        String prefix = name.substring(0, name.length() - "weight".length()) + "_weight_";
        Map<String, Tensor> parts = new LinkedHashMap<>();
        for (String part : Recipe.INT4_TILE_PACKED.dataNames()) {
          parts.put(part, st.read(prefix + part));
        }
        long[] shape = JSON.treeToValue(meta.get("_data").get("shape"), long[].class);
        int groupSize = meta.get("_data").get("block_size").get(1).asInt();
        TinygemmInt4Tensor tile = new TinygemmInt4Tensor(Int4Layout.TILE_PACKED, groupSize, shape, parts);
        assertEquals(st.metadata().get(name), tile.torchaoMetadata(), name);
        for (Int4Layout via : List.of(Int4Layout.CPU, Int4Layout.PLAIN)) {
          TinygemmInt4Tensor back = tile.repack(via).repack(Int4Layout.TILE_PACKED);
          parts.forEach((part, t) -> RecipeFormatsGoldenTest.assertBytes(t, back.part(part),
              name + " via " + via.cliName() + ": " + part));
        }
        tensors++;
      }
    }
    assertEquals(14, tensors);
  }

  private static void check(Path file) throws IOException {
    try (SafetensorsFile st = SafetensorsFile.open(file)) {
      Tensor q = st.read("q");
      int groupSize = Math.toIntExact(q.cols() / st.read("scale").cols());
      Map<String, Tensor> parts = new LinkedHashMap<>();
      parts.put("qdata", st.read("packed_tc_ikt8"));
      parts.put("scale_and_zero", st.read("scale_and_zero"));
      TinygemmInt4Tensor tile = new TinygemmInt4Tensor(Int4Layout.TILE_PACKED, groupSize, q.shape(), parts);

      // The golden README: PyTorch's CPU packing is there exactly where N % 16 == 0.
      assertEquals(q.rows() % 16 == 0, st.has(PACKED_CPU), file + ": N = " + q.rows() + " and " + PACKED_CPU);
      if (st.has(PACKED_CPU)) {
        TinygemmInt4Tensor cpu = tile.repack(Int4Layout.CPU);
        RecipeFormatsGoldenTest.assertBytes(st.read(PACKED_CPU), cpu.part("qdata"), PACKED_CPU);
        RecipeFormatsGoldenTest.assertBytes(st.read("scale_and_zero"), cpu.part("scale_and_zero"), "scale_and_zero");
      }

      TinygemmInt4Tensor plain = tile.repack(Int4Layout.PLAIN);
      int[] codes = q.toInts();
      for (int i = 0; i < codes.length; i++) {
        codes[i] -= 8;
      }
      RecipeFormatsGoldenTest.assertBytes(Tensor.fromInts(DType.I8, q.shape(), codes), plain.part("qdata"), "q - 8");
      RecipeFormatsGoldenTest.assertBytes(st.read("scale"), plain.part("scale"), "scale");
      RecipeFormatsGoldenTest.assertBytes(st.read("zero"), plain.part("zero_point"), "zero");
      RecipeFormatsGoldenTest.assertBytes(st.read("dq"), plain.dequantize(DType.BF16), "plain dequantizes to torchao's dq");
    }
  }
}
