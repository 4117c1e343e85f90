package shardquant.kernels.loader;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;

/**
 * Directories transformers 5.18 + torchao wrote ({@code save_pretrained}): every shard's metadata lists the
 * whole model, so a tensor belongs to the file that stores its parts. The loader finds each tensor once,
 * in its own file, with the recipe it was quantized with. (transformers' int8 directories split one
 * tensor's parts over two files, which this loader does not read: shardquant keeps a tensor's parts
 * together, so a row range is one file's bytes.)
 */
class LoaderTransformersGoldenTest {
  @ParameterizedTest(name = "{0}")
  @CsvSource({"8da4w, 8da4w, 32, 4", "intx-weight-only, intx-weight-only, 32, 4"})
  void wholeModelMetadataInEveryShardOpensOnce(String dir, String recipe, int group, int bits) throws IOException {
    Path root = GoldenFiles.dir("transformers-5.18").resolve(dir);
    QuantConfig c = new QuantConfig(Recipe.fromCliName(recipe), group, bits);
    JsonNode weightMap = new ObjectMapper().readTree(root.resolve(Checkpoint.INDEX).toFile()).path("weight_map");
    try (Checkpoint cp = Checkpoint.open(root); Stream<Path> files = Files.list(root)) {
      long shards = files.filter(p -> p.getFileName().toString().startsWith("model-")).count();
      assertTrue(shards > 2, "the golden directory is sharded");
      List<TensorInfo> tensors = cp.tensors();
      assertEquals(2 + 2 * 9 + 1, tensors.size(), "embeddings, 2 layers of 9 tensors, final norm, lm_head");
      for (TensorInfo t : tensors) {
        boolean linear = t.name().contains("_proj.");
        if (linear) {
          assertEquals(c, t.config(), t.name());
        } else {
          assertNull(t.config(), t.name());
        }
        for (TensorInfo.StoredPart p : t.parts()) {
          assertEquals(weightMap.path(p.key()).asText(), t.file().getFileName().toString(), p.key());
        }
      }
    }
  }
}
