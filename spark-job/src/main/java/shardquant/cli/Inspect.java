package shardquant.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintStream;
import java.util.Arrays;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import shardquant.commit.OutputDir;
import shardquant.common.Format;
import shardquant.io.Storage;
import shardquant.common.UserError;
import shardquant.kernels.safetensors.SafetensorsHeader;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.TorchaoMetadata;
import shardquant.plan.InputCheckpoint;
import shardquant.plan.ModelFiles;
import shardquant.plan.QuantizationConfig;
import shardquant.plan.InputTensor;

/**
 * {@code shardquant inspect PATH}: what a checkpoint holds, from headers only. For an input, each
 * tensor's dtype and shape; for a shardquant or torchao output, each original tensor's torchao type
 * and stored parts, and the recipe from the index.
 */
final class Inspect {
  private static final ObjectMapper JSON = new ObjectMapper();

  private Inspect() {}

  static int run(String[] args, PrintStream out) throws IOException {
    if (args.length != 1) {
      throw new UserError("inspect: expected one argument, the checkpoint (file or directory); got " + args.length);
    }
    Configuration conf = new Configuration();
    InputCheckpoint c = InputCheckpoint.read(args[0], conf);
    Path root = Storage.path(args[0]);
    FileSystem fs = Storage.fs(root, conf);
    Path index = new Path(root, InputCheckpoint.INDEX);
    if (fs.getFileStatus(root).isDirectory() && fs.exists(index)) {
      JsonNode meta = JSON.readTree(Storage.readString(fs, index)).path("metadata");
      if (meta.has("recipe") || meta.has("layout")) {
        out.printf("shardquant output: %s (group %s, bits %s, torchao %s)%s, shardquant %s, %s%n",
            meta.has("recipe") ? "recipe " + meta.path("recipe").asText() : "int4 plain layout",
            meta.path("group_size").asText(), meta.path("bits").asText(), meta.path("torchao_type").asText(),
            meta.has("layout") ? ", repacked into layout " + meta.path("layout").asText() : "",
            meta.path("shardquant_version").asText(),
            fs.exists(new Path(root, "_SUCCESS")) ? "committed (_SUCCESS)" : "NOT committed (no _SUCCESS)");
        QuantConfig config = null;
        if (meta.has("recipe")) {
          config = new QuantConfig(Recipe.fromCliName(meta.path("recipe").asText()), meta.path("group_size").asInt(),
              meta.path("bits").asInt());
        }
        out.println(QuantizationConfig.loaders(config));
        for (String n : OutputDir.unlisted(fs, root, JSON.readTree(Storage.readString(fs, index)))) {
          out.println("not in the index: " + n);
        }
      }
    }
    Path configJson = new Path(root, ModelFiles.CONFIG);
    if (fs.getFileStatus(root).isDirectory() && fs.exists(configJson)) {
      JsonNode qc;
      try {
        qc = JSON.readTree(Storage.readString(fs, configJson)).path("quantization_config");
      } catch (IOException e) {
        throw new UserError(Storage.display(configJson.toString()) + ": is not valid JSON: " + e.getMessage());
      }
      out.println("config.json quantization_config: " + (qc.isMissingNode() || qc.isNull() ? "none" : qc.toString()));
    }
    long total = 0;
    String lastFile = null;
    Map<String, String> metadata = Map.of();
    for (InputTensor t : c.tensors()) {
      if (!t.file().equals(lastFile)) {
        lastFile = t.file();
        SafetensorsHeader h = Storage.readHeader(fs, new Path(t.file()));
        metadata = h.metadata();
        out.printf("%s  (%d tensors, %s)%n", t.file(), h.entries().size(), Format.bytes(h.fileSize()));
        for (String name : metadata.keySet()) {
          String v = metadata.get(name);
          if (v.startsWith("{\"_type\"") && !v.equals("{\"_type\": \"Tensor\"}")) {
            JsonNode n = JSON.readTree(v);
            // Each file carries the whole model's metadata: list the tensors this one stores.
            if (TorchaoMetadata.storedKeys(name, n).stream().anyMatch(h.entries()::containsKey)) {
              out.printf("  %-52s %s %s%n", name, n.path("_type").asText(), n.path("_data").path("shape"));
            }
          }
        }
      }
      total += t.byteSize();
      out.printf("    %-50s %-5s %s%n", t.name(), t.dtype().safetensorsName(), Arrays.toString(t.shape()));
    }
    out.printf("%d tensors, %s%n", c.tensors().size(), Format.bytes(total));
    return Main.OK;
  }
}
