package shardquant.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.TreeMap;
import java.util.TreeSet;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;

/**
 * config.json's {@code quantization_config} for an output, as transformers (>= 5) writes it for a
 * {@code TorchAoConfig} and reads it back, and vLLM's {@code TorchAOConfig.from_config} reads it:
 * {@code quant_method: "torchao"}, {@code quant_type: {"default": <torchao config_to_dict>}},
 * {@code modules_to_not_convert}, {@code include_input_output_embeddings}, {@code untie_embedding_weights}.
 *
 * <p>{@code modules_to_not_convert} is null when only what transformers leaves out by default stays in
 * high precision (embeddings and the output head, which are not quantizable Linear layers to it). Else it
 * lists every Linear-shaped weight's module left unquantized (excluded ones, MoE routers), output head
 * included: transformers skips its defaults only when the list is null, and vLLM skips what the list names.
 */
public final class QuantizationConfig {
  private static final JsonNodeFactory JSON = JsonNodeFactory.instance;

  private QuantizationConfig() {}

  /** The {@code quantization_config} of {@code plan}'s output, keys sorted as transformers writes them; null where no loader would read it right. */
  public static ObjectNode of(Plan plan) {
    ObjectNode config = plan.config() == null ? null : plan.config().torchaoConfig();
    if (config == null) {
      return null;
    }
    ObjectNode qc = JSON.objectNode();
    qc.put("include_input_output_embeddings", plan.tensors().stream()
        .anyMatch(t -> t.reported() && (isEmbedding(t.input().name()) || JobSpec.isOutputHead(lower(t.input().name())))));
    List<String> skipped = modulesToNotConvert(plan);
    if (skipped == null) {
      qc.putNull("modules_to_not_convert");
    } else {
      ArrayNode a = qc.putArray("modules_to_not_convert");
      skipped.forEach(a::add);
    }
    qc.put("quant_method", "torchao");
    qc.putObject("quant_type").set("default", config);
    qc.put("untie_embedding_weights", false);
    return sorted(qc);
  }

  /** Module names of Linear-shaped weights left in high precision, or null when only the output head is. */
  static List<String> modulesToNotConvert(Plan plan) {
    TreeSet<String> kept = new TreeSet<>();
    boolean headQuantized = false;
    for (Plan.Tensor t : plan.tensors()) {
      String name = t.input().name();
      boolean linear = t.input().rank() == 2 && t.input().dtype().isFloating() && name.endsWith(".weight")
          && !isEmbedding(name);
      if (linear && !t.reported()) {
        kept.add(name.substring(0, name.length() - ".weight".length()));
      }
      headQuantized |= t.reported() && JobSpec.isOutputHead(lower(name));
    }
    if (kept.stream().allMatch(m -> JobSpec.isOutputHead(lower(m) + "."))) {
      return null;
    }
    List<String> out = new ArrayList<>(kept);
    if (!headQuantized && out.stream().noneMatch(m -> JobSpec.isOutputHead(lower(m) + "."))) {
      out.add("lm_head"); // tied to the embeddings, so not stored, but transformers would skip it by default too
    }
    return out;
  }

  /**
   * Which loaders read an output quantized with {@code config} (null: the plain int4 form of repack), in
   * one line for the run summary and {@code inspect}.
   */
  public static String loaders(QuantConfig config) {
    if (config != null && config.torchaoConfig() != null) {
      return "loads with transformers >= 5 (from_pretrained), vLLM >= 0.13, torchao's unflatten_tensor_state_dict and"
          + " shardquant's Checkpoint" + (config.recipe() == Recipe.INT4_TILE_PACKED ? " (its int4 matmul needs a CUDA GPU)" : "");
    }
    String type = config == null ? "shardquant.Int4TinygemmUnpackedTensor" : config.recipe().torchaoType();
    return "loads with shardquant's Checkpoint only: " + type + " is not on torchao 0.19's safetensors allow-list, so"
        + " transformers, vLLM and torchao's unflatten_tensor_state_dict cannot read it (config.json has no"
        + " quantization_config)";
  }

  private static boolean isEmbedding(String name) {
    return lower(name).contains("embed");
  }

  private static String lower(String s) {
    return s.toLowerCase(Locale.ROOT);
  }

  /** A copy with every object's keys in sorted order, as transformers' {@code to_json_string(sort_keys=True)}. */
  static ObjectNode sorted(ObjectNode o) {
    TreeMap<String, JsonNode> fields = new TreeMap<>();
    for (Iterator<String> it = o.fieldNames(); it.hasNext(); ) {
      String k = it.next();
      JsonNode v = o.get(k);
      fields.put(k, v.isObject() ? sorted((ObjectNode) v) : v);
    }
    ObjectNode out = JSON.objectNode();
    fields.forEach(out::set);
    return out;
  }
}
