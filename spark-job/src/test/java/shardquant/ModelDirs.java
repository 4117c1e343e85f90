package shardquant;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.tensor.SyntheticWeights;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.safetensors.SafetensorsWriter;

/**
 * Realistic Hugging Face model directories for tests, as a hub download holds them: sharded
 * safetensors with an index, config.json, generation config, tokenizer files, a chat template, custom
 * code, README and LICENSE, a nested folder, and what a quantized output must leave behind (weights in
 * other formats, {@code original/} consolidated weights, a hidden {@code .gitattributes}). Two shapes:
 * a Llama with tied embeddings (no {@code lm_head.weight}), and a Mixture-of-Experts model with routers
 * and 3-D fused experts. Every 2-D weight holds 16384·k elements, so every recipe (NF4 too) takes it.
 */
public final class ModelDirs {
  public static final int HIDDEN = 128;
  public static final int INTERMEDIATE = 256;
  public static final int LAYERS = 2;
  public static final int EXPERTS = 4;
  public static final int VOCAB = 256;
  /** The non-weight files each directory has, which the output must hold byte for byte (config.json aside). */
  public static final List<String> COPIED = List.of("LICENSE", "README.md", "assets/notes.txt", "chat_template.jinja",
      "config.json", "configuration_custom.py", "generation_config.json", "special_tokens_map.json", "tokenizer.json",
      "tokenizer_config.json");
  /** What the output must not hold. */
  public static final List<String> LEFT_BEHIND =
      List.of("pytorch_model.bin", "original", ".gitattributes", "consolidated.safetensors");

  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private ModelDirs() {}

  public static Path tiedLlama(Path dir) throws IOException {
    Map<String, long[]> t = new LinkedHashMap<>();
    t.put("model.embed_tokens.weight", new long[] {VOCAB, HIDDEN});
    for (int i = 0; i < LAYERS; i++) {
      attention(t, i);
      String p = "model.layers." + i + ".mlp.";
      t.put(p + "gate_proj.weight", new long[] {INTERMEDIATE, HIDDEN});
      t.put(p + "up_proj.weight", new long[] {INTERMEDIATE, HIDDEN});
      t.put(p + "down_proj.weight", new long[] {HIDDEN, INTERMEDIATE});
    }
    t.put("model.norm.weight", new long[] {HIDDEN});
    return write(dir, t, "LlamaForCausalLM", "llama", true);
  }

  /** Routers {@code model.layers.N.mlp.gate.weight} [experts, hidden], fused experts [experts, 2·I, H] and [experts, H, I]. */
  public static Path moe(Path dir) throws IOException {
    Map<String, long[]> t = new LinkedHashMap<>();
    t.put("model.embed_tokens.weight", new long[] {VOCAB, HIDDEN});
    for (int i = 0; i < LAYERS; i++) {
      attention(t, i);
      String p = "model.layers." + i + ".mlp.";
      t.put(p + "gate.weight", new long[] {EXPERTS, HIDDEN});
      t.put(p + "experts.gate_up_proj", new long[] {EXPERTS, 2 * INTERMEDIATE, HIDDEN});
      t.put(p + "experts.down_proj", new long[] {EXPERTS, HIDDEN, INTERMEDIATE});
      t.put(p + "shared_expert.gate_proj.weight", new long[] {INTERMEDIATE, HIDDEN});
    }
    t.put("model.norm.weight", new long[] {HIDDEN});
    t.put("lm_head.weight", new long[] {VOCAB, HIDDEN});
    return write(dir, t, "Qwen3MoeForCausalLM", "qwen3_moe", false);
  }

  private static void attention(Map<String, long[]> t, int layer) {
    String p = "model.layers." + layer + ".";
    t.put(p + "input_layernorm.weight", new long[] {HIDDEN});
    for (String proj : List.of("q_proj", "k_proj", "v_proj", "o_proj")) {
      t.put(p + "self_attn." + proj + ".weight", new long[] {HIDDEN, HIDDEN});
    }
    t.put(p + "post_attention_layernorm.weight", new long[] {HIDDEN});
  }

  private static Path write(Path dir, Map<String, long[]> shapes, String architecture, String modelType, boolean tied)
      throws IOException {
    Files.createDirectories(dir);
    List<String> names = new ArrayList<>(shapes.keySet());
    int half = names.size() / 2;
    ObjectNode index = JSON.createObjectNode();
    ObjectNode weightMap = JSON.createObjectNode();
    long total = 0;
    for (int f = 0; f < 2; f++) {
      String file = String.format("model-%05d-of-00002.safetensors", f + 1);
      Map<String, Tensor> tensors = new LinkedHashMap<>();
      for (String name : f == 0 ? names.subList(0, half) : names.subList(half, names.size())) {
        long[] shape = shapes.get(name);
        long n = 1;
        for (long d : shape) {
          n *= d;
        }
        Tensor flat = SyntheticWeights.directBf16(7, name, 1, n);
        tensors.put(name, flat.reshape(shape));
        weightMap.put(name, file);
        total += 2 * n;
      }
      SafetensorsWriter.write(dir.resolve(file), tensors, Map.of("format", "pt"));
    }
    index.putObject("metadata").put("total_size", total);
    index.set("weight_map", weightMap);
    Files.writeString(dir.resolve("model.safetensors.index.json"), JSON.writeValueAsString(index));

    // config.json as transformers writes it (sorted keys, 2 spaces, a float written Python's way).
    Files.writeString(dir.resolve("config.json"), "{\n  \"architectures\": [\n    \"" + architecture + "\"\n  ],\n"
        + "  \"bos_token_id\": 1,\n  \"dtype\": \"bfloat16\",\n  \"eos_token_id\": 2,\n  \"head_dim\": 64,\n"
        + "  \"hidden_size\": " + HIDDEN + ",\n  \"intermediate_size\": " + INTERMEDIATE + ",\n  \"model_type\": \"" + modelType
        + "\",\n" + (modelType.contains("moe") ? "  \"num_experts\": " + EXPERTS + ",\n" : "")
        + "  \"num_attention_heads\": 2,\n  \"num_hidden_layers\": " + LAYERS + ",\n  \"num_key_value_heads\": 2,\n"
        + "  \"rms_norm_eps\": 1e-06,\n  \"tie_word_embeddings\": " + tied + ",\n  \"vocab_size\": " + VOCAB + "\n}\n");
    Files.writeString(dir.resolve("generation_config.json"), "{\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n");
    Files.writeString(dir.resolve("tokenizer.json"), "{\"version\": \"1.0\", \"model\": {\"type\": \"WordLevel\", \"vocab\":"
        + " {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"h\u00e9llo\": 3}, \"unk_token\": \"<unk>\"}}\n");
    Files.writeString(dir.resolve("tokenizer_config.json"), "{\"tokenizer_class\": \"PreTrainedTokenizerFast\"}\n");
    Files.writeString(dir.resolve("special_tokens_map.json"), "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}\n");
    Files.writeString(dir.resolve("chat_template.jinja"), "{% for m in messages %}{{ m['content'] }}{% endfor %}\n");
    Files.writeString(dir.resolve("configuration_custom.py"), "# custom code a model may ship (trust_remote_code)\n");
    Files.writeString(dir.resolve("README.md"), "# a test model\n");
    Files.write(dir.resolve("LICENSE"), "Apache-2.0 \u00a9\n".getBytes(StandardCharsets.UTF_8));
    Files.createDirectories(dir.resolve("assets"));
    Files.writeString(dir.resolve("assets/notes.txt"), "nested files come along at their relative path\n");
    Files.write(dir.resolve("pytorch_model.bin"), new byte[] {1, 2, 3});
    SafetensorsWriter.write(dir.resolve("consolidated.safetensors"), Map.of(), Map.of()); // beside the index, not in it
    Files.createDirectories(dir.resolve("original"));
    Files.write(dir.resolve("original/consolidated.00.pth"), new byte[] {4, 5, 6});
    Files.writeString(dir.resolve(".gitattributes"), "*.safetensors filter=lfs\n");
    return dir;
  }
}
