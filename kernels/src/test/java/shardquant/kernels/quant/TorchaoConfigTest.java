package shardquant.kernels.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.Map;
import org.junit.jupiter.api.Test;
import shardquant.kernels.GoldenFiles;

/**
 * Each recipe's torchao config JSON against what transformers 5.18 + torchao 0.19 wrote into config.json
 * for the same config ({@code shared/golden/transformers-5.18/summary.json}). The recipes transformers
 * cannot quantize on CPU (int4 tile-packed) and other bit widths are checked against torchao's own
 * {@code config_to_dict} by the Python interoperability test (spark-job's {@code HfLoadTest}).
 */
class TorchaoConfigTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @Test
  void everyCpuRecipeEncodesItsConfigAsTransformersWroteIt() throws IOException {
    JsonNode recipes = JSON.readTree(GoldenFiles.dir("transformers-5.18").resolve("summary.json").toFile()).path("recipes");
    Map<String, QuantConfig> ours = Map.of(
        "8da4w", QuantConfig.of(Recipe.INT8_DYN_ACT_INT4_WEIGHT),
        "intx-weight-only", QuantConfig.of(Recipe.INTX_WEIGHT_ONLY),
        "int8-weight-only", QuantConfig.of(Recipe.INT8_WEIGHT_ONLY),
        "int8-dynamic", QuantConfig.of(Recipe.INT8_DYNAMIC));
    assertEquals(ours.keySet(), iterableNames(recipes));
    ours.forEach((name, c) -> assertEquals(recipes.path(name).path("quantization_config").path("quant_type").path("default"),
        c.torchaoConfig(), name));
  }

  @Test
  void parametersReachTheConfig() {
    JsonNode intx = new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 64, 2).torchaoConfig();
    assertEquals("int2", intx.at("/_data/weight_dtype/_data").asText());
    assertEquals(64, intx.at("/_data/granularity/_data/group_size").asInt());
    JsonNode tile = new QuantConfig(Recipe.INT4_TILE_PACKED, 32, 4).torchaoConfig();
    assertEquals("Int4WeightOnlyConfig", TorchaoConfig.typeOf(tile));
    assertEquals(32, tile.at("/_data/group_size").asInt());
    assertEquals("TILE_PACKED_TO_4D", tile.at("/_data/int4_packing_format/_data").asText());
    assertEquals(2, tile.path("_version").asInt());
  }

  @Test
  void formatsNoTorchaoLoaderReadsHaveNoConfig() {
    assertNull(QuantConfig.of(Recipe.NF4).torchaoConfig());
    assertNull(QuantConfig.of(Recipe.INT4_CPU).torchaoConfig());
    for (Recipe r : Recipe.values()) {
      if (r != Recipe.NF4 && r != Recipe.INT4_CPU) {
        assertNotNull(QuantConfig.of(r).torchaoConfig(), r.cliName());
      }
    }
  }

  private static java.util.Set<String> iterableNames(JsonNode n) {
    java.util.Set<String> out = new java.util.HashSet<>();
    n.fieldNames().forEachRemaining(out::add);
    return out;
  }
}
