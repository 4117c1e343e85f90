package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.TorchEnv;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;

/**
 * The output loads, unchanged, with transformers' {@code from_pretrained} and torchao (the real loaders,
 * from {@code shared/tools/torch-env.sh}): the golden Llama directory quantized by shardquant in several
 * files gives config.json's quantization_config JSON-equal to what transformers itself wrote, and
 * {@code tools/hf_check.py} finds every weight and the logits identical to transformers + torchao's own
 * quantization in process, to the directory transformers wrote and (where this CPU's kernels reproduce it)
 * to its recorded logits. Every recipe's config JSON is checked against torchao's {@code config_to_dict}.
 */
class HfLoadTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path tmp;

  private static final Path GOLDEN = JobTestSupport.golden("transformers-5.18");

  /** The golden input quantized by the job with {@code args}. */
  private Path quantizeGolden(String... args) {
    Path out = tmp.resolve("out");
    Run r = JobTestSupport.quantize(GOLDEN.resolve("input"), out, args);
    assertEquals(0, r.status(), r::toString);
    return out;
  }

  /** {@code tools/hf_check.py OUT INPUT ...} against the golden input. */
  private static TorchEnv.Result hfCheck(Path out, String... more) throws IOException {
    List<String> args = new java.util.ArrayList<>(List.of(out.toString(), GOLDEN.resolve("input").toString()));
    args.addAll(List.of(more));
    return TorchEnv.run("hf_check.py", args, 600);
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"8da4w", "intx-weight-only", "int8-weight-only", "int8-dynamic"})
  void transformersLoadsTheOutputAsItLoadsItsOwn(String recipe) throws IOException {
    Path golden = GOLDEN;
    Path out = quantizeGolden("--recipe", recipe, "--output-file-bytes", "400000", "--shard-bytes", "65536");
    assertTrue(JobTestSupport.modelFiles(out).size() > 2, "several output files, each with the whole model's metadata");
    assertEquals(JSON.readTree(golden.resolve(recipe).resolve("config.json").toFile()),
        JSON.readTree(out.resolve("config.json").toFile()), "config.json as transformers wrote it, quantization_config included");
    assertEquals(-1L, Files.mismatch(golden.resolve("input/generation_config.json"), out.resolve("generation_config.json")));

    TorchEnv.Result check = hfCheck(out, "--logits", golden.resolve(recipe).resolve("logits.safetensors").toString(),
        "--same-as", golden.resolve(recipe).toString());
    assertEquals(0, check.status(), check::output);
    assertTrue(check.output().contains("summary: ok"), check::output);
  }

  /** Modules left out by --exclude are named in modules_to_not_convert, and transformers' own quantization with that config skips exactly them. */
  @Test
  void excludedModulesAreNamedAndSkippedByTransformers() throws IOException {
    Path out = quantizeGolden("--recipe", "int8-weight-only", "--exclude", ".*\\.o_proj\\.weight");
    JsonNode qc = JSON.readTree(out.resolve("config.json").toFile()).path("quantization_config");
    assertEquals(JSON.readTree("[\"lm_head\", \"model.layers.0.self_attn.o_proj\", \"model.layers.1.self_attn.o_proj\"]"),
        qc.path("modules_to_not_convert"));
    TorchEnv.Result check = hfCheck(out);
    assertEquals(0, check.status(), check::output);
    assertTrue(check.output().contains("ok: same 12 quantized weights in OUT and reference"), check::output);
  }

  /** int4 tile-packed: transformers and torchao pack it only with CUDA, so the load is checked where a GPU is. */
  @Test
  void int4TilePackedLoadsWhereThereIsAGpu() throws IOException {
    TorchEnv.Result check = hfCheck(quantizeGolden("--recipe", "int4-tile-packed", "--group-size", "64"));
    Assumptions.assumeFalse(check.status() == 4, () -> "skipped (GPU case): " + check.output().lines()
        .filter(l -> l.startsWith("skip:")).findFirst().orElse(check.output()));
    assertEquals(0, check.status(), check::output);
  }

  /** Every recipe's quantization_config against torchao's own config_to_dict, and back through config_from_dict. */
  @Test
  void everyRecipesConfigIsTorchaosOwnEncoding() throws IOException {
    ObjectNode cases = JSON.createObjectNode();
    for (int g : new int[] {32, 64, 128, 256}) {
      cases.set("Int4WeightOnlyConfig(group_size=" + g + ", int4_packing_format=Int4PackingFormat.TILE_PACKED_TO_4D)",
          new QuantConfig(Recipe.INT4_TILE_PACKED, g, 4).torchaoConfig());
      cases.set("Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(" + g + "))",
          new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, g, 4).torchaoConfig());
      for (int bits = 1; bits <= 8; bits++) {
        cases.set("IntxWeightOnlyConfig(weight_dtype=torch.int" + bits + ", granularity=PerGroup(" + g + "))",
            new QuantConfig(Recipe.INTX_WEIGHT_ONLY, g, bits).torchaoConfig());
      }
    }
    cases.set("Int8WeightOnlyConfig()", QuantConfig.of(Recipe.INT8_WEIGHT_ONLY).torchaoConfig());
    cases.set("Int8DynamicActivationInt8WeightConfig()", QuantConfig.of(Recipe.INT8_DYNAMIC).torchaoConfig());
    Path file = tmp.resolve("cases.json");
    JSON.writeValue(file.toFile(), cases);
    TorchEnv.Result check = TorchEnv.run("torchao_config_check.py", List.of(file.toString()), 300);
    assertEquals(0, check.status(), check::output);
    assertTrue(check.output().contains("torchao_config_check: " + cases.size() + " passed, 0 failed"), check::output);
  }
}
