package shardquant.kernels.loader;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.Nf4Ref;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.TorchaoMetadata;
import shardquant.kernels.safetensors.SafetensorsWriter;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * Writes checkpoints as the Spark job does (spark-job's Planner.layOutFiles and OutputDir.commit):
 * whole tensors per file, a quantized {@code a.b.weight} stored as {@code a.b._weight_<part>}, per-tensor
 * torchao metadata, {@code tensor_names} and {@code format}, and an index with the recipe and weight_map.
 */
final class LoaderFixtures {
  private static final ObjectMapper JSON = new ObjectMapper();

  private LoaderFixtures() {}

  /** A tensor to write: quantized with the checkpoint's recipe, or kept as it is. */
  record Entry(String name, Tensor values, boolean quantize) {}

  /** Quantizes a whole tensor as the job does (NF4 with its first-pass scaler mean). */
  static QuantizedTensor quantize(Tensor w, QuantConfig c) {
    return quantizeRows(w, c, 0, w.rows());
  }

  /** Rows [from, to) quantized alone, with the whole tensor's statistics (NF4's scaler mean) as the job's first pass gives. */
  static QuantizedTensor quantizeRows(Tensor w, QuantConfig c, long from, long to) {
    GlobalStats global = c.recipe() == Recipe.NF4
        ? new GlobalStats(Nf4Ref.scalerMean(w.dtype(), Nf4Ref.blockAbsmax(w))) : GlobalStats.NONE;
    return c.recipe().kernel().quantize(w.rowSlice(from, to), c, global, new QuantStats());
  }

  /** Writes {@code entries} into {@code dir}, {@code perFile} tensors to a file, with the index. */
  static Path writeOutputDir(Path dir, QuantConfig c, List<Entry> entries, int perFile) throws IOException {
    Files.createDirectories(dir);
    int count = (entries.size() + perFile - 1) / perFile;
    ObjectNode index = JSON.createObjectNode();
    ObjectNode meta = index.putObject("metadata");
    ObjectNode weightMap = JSON.createObjectNode();
    long total = 0;
    for (int f = 0; f < count; f++) {
      String name = String.format("model-%05d-of-%05d.safetensors", f + 1, count);
      Map<String, Tensor> stored = new LinkedHashMap<>();
      Map<String, String> metadata = new LinkedHashMap<>();
      ArrayNode names = JSON.createArrayNode();
      for (Entry e : entries.subList(f * perFile, Math.min(entries.size(), (f + 1) * perFile))) {
        if (e.quantize()) {
          quantize(e.values(), c).parts().forEach((part, t) -> stored.put(shardquant.kernels.quant.TorchaoMetadata.storedKey(e.name(), part), t));
          metadata.put(e.name(), TorchaoMetadata.quantized(c, e.values().shape(), e.values().dtype()));
        } else {
          stored.put(e.name(), e.values());
          metadata.put(e.name(), TorchaoMetadata.plain());
        }
        names.add(e.name());
      }
      metadata.put("tensor_names", TorchaoMetadata.pythonJson(names));
      metadata.put("format", "pt");
      SafetensorsWriter.write(dir.resolve(name), stored, metadata);
      for (Map.Entry<String, Tensor> s : stored.entrySet()) {
        weightMap.put(s.getKey(), name);
        total += s.getValue().byteSize();
      }
    }
    meta.put("total_size", total);
    meta.put("recipe", c.recipe().cliName());
    meta.put("group_size", c.groupSize());
    meta.put("bits", c.bits());
    meta.put("torchao_type", c.recipe().torchaoType());
    meta.put("shardquant_version", "0.1.0");
    meta.put("input_fingerprint", "test");
    index.set("weight_map", weightMap);
    Files.writeString(dir.resolve(Checkpoint.INDEX), JSON.writeValueAsString(index) + "\n");
    return dir;
  }

  /** The usual model around one weight: a norm and an embedding kept plain, the weight and a second one quantized. */
  static List<Entry> model(Tensor weight, QuantConfig c) {
    List<Entry> entries = new ArrayList<>();
    entries.add(new Entry("model.embed_tokens.weight", weights(16, 8, DType.BF16, 1), false));
    entries.add(new Entry("model.layers.0.mlp.up_proj.weight", weight, true));
    entries.add(new Entry("model.layers.0.input_layernorm.weight", weights(1, 24, weight.dtype(), 2).reshape(24), false));
    long rows = 2 * c.recipe().kernel().rowAlignment(weight.cols(), c);
    entries.add(new Entry("model.layers.0.mlp.down_proj.weight", weights((int) rows, (int) weight.cols(), weight.dtype(), 3),
        true));
    return entries;
  }

  /** The project's test weights with edge rows ({@link shardquant.kernels.quant.RecipeShardingTest#weights}). */
  static Tensor weights(int rows, int cols, DType dtype, long seed) {
    return shardquant.kernels.quant.RecipeShardingTest.weights(rows, cols, dtype, seed);
  }
}
