package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.ModelDirs;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.TensorEntry;

/**
 * The output is a model directory a serving stack loads: for every recipe, on a tied-embedding Llama and
 * on a Mixture-of-Experts model, every non-weight file comes along byte for byte, config.json is the
 * input's plus the recipe's quantization_config (none for the recipes no torchao loader reads), every
 * output file carries the whole model's metadata, and nothing left behind reaches the output.
 */
class ModelDirectoryTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path tmp;

  static Stream<Arguments> recipesAndModels() {
    List<Arguments> out = new ArrayList<>();
    for (Recipe r : Recipe.values()) {
      out.add(Arguments.of(r.cliName(), "tied-llama"));
      out.add(Arguments.of(r.cliName(), "moe"));
    }
    return out.stream();
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("recipesAndModels")
  void outputIsTheModelDirectoryWithItsQuantizationConfig(String recipe, String model) throws IOException {
    Path in = model.equals("moe") ? ModelDirs.moe(tmp.resolve("in")) : ModelDirs.tiedLlama(tmp.resolve("in"));
    Path out = tmp.resolve("out");
    Run r = JobTestSupport.quantize(in, out, "--recipe", recipe, "--output-file-bytes", "100000");
    assertEquals(0, r.status(), r::toString);

    // Every non-weight file, nested ones too, byte for byte; nothing left behind comes along.
    for (String f : ModelDirs.COPIED) {
      if (!f.equals("config.json")) {
        assertEquals(-1L, Files.mismatch(in.resolve(f), out.resolve(f)), f);
      }
    }
    for (String f : ModelDirs.LEFT_BEHIND) {
      assertFalse(Files.exists(out.resolve(f)), f + " must not be copied");
    }
    assertTrue(r.err().contains("left behind: .gitattributes (hidden), consolidated.safetensors (safetensors weights not in the"
        + " input's index), original/ (consolidated weights), pytorch_model.bin (weights in another format)"), r::toString);

    // config.json: every byte of the input's kept, and the recipe's quantization_config added.
    String inConfig = Files.readString(in.resolve("config.json"));
    String outConfig = Files.readString(out.resolve("config.json"));
    ObjectNode outJson = (ObjectNode) JSON.readTree(outConfig);
    JsonNode qc = outJson.remove("quantization_config");
    assertEquals(JSON.readTree(inConfig), outJson, "every other key of config.json is kept");
    QuantConfig c = QuantConfig.of(Recipe.fromCliName(recipe));
    if (c.torchaoConfig() == null) {
      assertNull(qc, "no quantization_config a loader would misread");
      assertEquals(inConfig, outConfig);
      assertTrue(r.out().contains("loads with shardquant's Checkpoint only"), r::toString);
    } else {
      assertTrue(outConfig.startsWith(inConfig.substring(0, inConfig.lastIndexOf('}')).stripTrailing() + ",\n"), outConfig);
      assertEquals("torchao", qc.path("quant_method").asText());
      assertEquals(c.torchaoConfig(), qc.path("quant_type").path("default"));
      assertEquals(JSON.readTree("false"), qc.path("include_input_output_embeddings"));
      assertEquals(JSON.readTree("false"), qc.path("untie_embedding_weights"));
      assertEquals(model.equals("moe")
          ? JSON.readTree("[\"lm_head\", \"model.layers.0.mlp.gate\", \"model.layers.1.mlp.gate\"]")
          : JSON.nullNode(), qc.path("modules_to_not_convert"), "routers stay in high precision and are named");
      assertTrue(r.out().contains("loads with transformers >= 5"), r::toString);
    }

    // Every file: the whole model's metadata, identical but for shardquant's own entry.
    List<String> inputNames = new ArrayList<>();
    for (Path f : List.of(in.resolve("model-00001-of-00002.safetensors"), in.resolve("model-00002-of-00002.safetensors"))) {
      try (SafetensorsFile s = SafetensorsFile.open(f)) {
        s.entries().forEach(e -> inputNames.add(e.name()));
      }
    }
    List<Path> files = JobTestSupport.modelFiles(out);
    assertTrue(files.size() > 2, "several output files: " + files);
    Map<String, String> first = null;
    TreeSet<String> stored = new TreeSet<>();
    for (Path f : files) {
      try (SafetensorsFile s = SafetensorsFile.open(f)) {
        Map<String, String> meta = new HashMap<>(s.metadata());
        assertTrue(meta.remove("shardquant") != null, f.toString());
        if (first == null) {
          first = meta;
        }
        assertEquals(first, meta, f + " carries the same metadata as the first file");
        s.entries().stream().map(TensorEntry::name).forEach(stored::add);
      }
    }
    assertEquals(inputNames, List.of(JSON.readValue(first.get("tensor_names"), String[].class)));
    assertEquals("pt", first.get("format"));
    assertEquals(new TreeSet<>(inputNames), new TreeSet<>(first.keySet().stream()
        .filter(k -> !k.equals("tensor_names") && !k.equals("format")).toList()), "one entry per tensor");
    assertEquals(stored, new TreeSet<>(JobTestSupport.storedTensors(out).keySet()));

    if (model.equals("moe")) {
      assertTrue(r.err().contains("copied unchanged, not 1-D: model.embed_tokens.weight [256, 128], model.layers.*.mlp.gate.weight"
          + " (2, e.g. [4, 128]), model.layers.*.mlp.experts.gate_up_proj (2, e.g. [4, 512, 128]),"
          + " model.layers.*.mlp.experts.down_proj (2, e.g. [4, 128, 256]), lm_head.weight [256, 128]"), r::toString);
    }
    Run v = JobTestSupport.cli("verify", "--input", in.toString(), "--output", out.toString());
    assertEquals(0, v.status(), v::toString);
    Run inspect = JobTestSupport.cli("inspect", out.toString());
    assertEquals(0, inspect.status(), inspect::toString);
    assertTrue(inspect.out().contains("config.json quantization_config: " + (qc == null ? "none" : qc.toString())),
        inspect::toString);
    assertTrue(inspect.out().contains(c.torchaoConfig() == null ? "loads with shardquant's Checkpoint only"
        : "loads with transformers >= 5"), inspect::toString);
  }

  @Test
  void rerunsKeepIdenticalCopiesAndRedoChangedOnes() throws IOException {
    Path in = ModelDirs.tiedLlama(tmp.resolve("in"));
    Path out = tmp.resolve("out");
    assertEquals(0, JobTestSupport.quantize(in, out, "--recipe", "8da4w").status());
    FileTime old = FileTime.fromMillis(1_000_000_000_000L);
    for (String f : ModelDirs.COPIED) {
      Files.setLastModifiedTime(out.resolve(f), old);
    }
    Run same = JobTestSupport.quantize(in, out, "--recipe", "8da4w");
    assertEquals(0, same.status(), same::toString);
    for (String f : ModelDirs.COPIED) {
      assertEquals(old, Files.getLastModifiedTime(out.resolve(f)), f + " is kept, not rewritten");
    }

    Files.writeString(in.resolve("tokenizer.json"), "{\"version\": \"1.0\", \"changed\": true}\n");
    Files.delete(in.resolve("README.md"));
    Run changed = JobTestSupport.quantize(in, out, "--recipe", "8da4w");
    assertEquals(0, changed.status(), changed::toString);
    assertTrue(changed.err().contains("already committed by an earlier run: kept"), changed::toString);
    assertEquals(-1L, Files.mismatch(in.resolve("tokenizer.json"), out.resolve("tokenizer.json")));
    assertFalse(Files.exists(out.resolve("README.md")), "a file the input no longer has is removed");
    assertEquals(old, Files.getLastModifiedTime(out.resolve("LICENSE")));
    assertEquals(0, JobTestSupport.cli("verify", "--input", in.toString(), "--output", out.toString()).status());

    // verify sees a changed copy and a config.json whose quantization_config is not the recipe's.
    Files.writeString(out.resolve("tokenizer.json"), "{}");
    String config = Files.readString(out.resolve("config.json"));
    Files.writeString(out.resolve("config.json"), config.replace("\"group_size\": 32", "\"group_size\": 64"));
    Run v = JobTestSupport.cli("verify", "--input", in.toString(), "--output", out.toString());
    assertEquals(3, v.status(), v::toString);
    assertTrue(v.out().contains("MISMATCH tokenizer.json: differs from the input's copy"), v::toString);
    assertTrue(v.out().contains("MISMATCH config.json: differs from the input's config.json with the quantization_config"),
        v::toString);
  }

  /** repack carries the model files along and gives config.json the target layout's quantization_config, byte-exactly back and forth. */
  @Test
  void repackRewritesTheQuantizationConfigForItsLayout() throws IOException {
    Path in = ModelDirs.tiedLlama(tmp.resolve("in"));
    Path tile = tmp.resolve("tile");
    assertEquals(0, JobTestSupport.quantize(in, tile, "--recipe", "int4-tile-packed").status());
    Path cpu = tmp.resolve("cpu");
    Run toCpu = RepackJobTest.repack(tile, cpu, "cpu");
    assertEquals(0, toCpu.status(), toCpu::toString);
    assertEquals(Files.readString(in.resolve("config.json")), Files.readString(cpu.resolve("config.json")),
        "no quantization_config for the cpu layout: the input's config.json as it was");
    Path back = tmp.resolve("back");
    assertEquals(0, RepackJobTest.repack(cpu, back, "tile-packed").status());
    assertEquals(Files.readString(tile.resolve("config.json")), Files.readString(back.resolve("config.json")));
    for (String f : ModelDirs.COPIED) {
      if (!f.equals("config.json")) {
        assertEquals(-1L, Files.mismatch(in.resolve(f), back.resolve(f)), f);
      }
    }
  }

  /** The record of an earlier run's copies is read from the output directory: a path in it never reaches outside. */
  @Test
  void recordedCopiesOutsideTheDirectoryAreNeverRemoved() throws IOException {
    Path in = ModelDirs.tiedLlama(tmp.resolve("in"));
    Path out = tmp.resolve("out");
    assertEquals(0, JobTestSupport.quantize(in, out, "--recipe", "8da4w").status());
    Path victim = Files.writeString(tmp.resolve("victim.txt"), "keep me");
    Path report = out.resolve("quantization_report.json");
    ObjectNode json = (ObjectNode) JSON.readTree(report.toFile());
    ((ObjectNode) json.path("model_files")).put("../victim.txt", "00").put(victim.toString(), "00");
    Files.writeString(report, json.toString());
    Files.delete(out.resolve("_SUCCESS"));
    Files.delete(out.resolve("model.safetensors.index.json"));
    Run r = JobTestSupport.quantize(in, out, "--recipe", "8da4w");
    assertEquals(0, r.status(), r::toString);
    assertEquals("keep me", Files.readString(victim));
  }

  @Test
  void aModelDirectoryIsNotTakenForAnEarlierRunsOutput() throws IOException {
    Path in = ModelDirs.tiedLlama(tmp.resolve("in"));
    Path out = Files.createDirectories(tmp.resolve("out"));
    Files.writeString(out.resolve("config.json"), "{}");
    Run r = JobTestSupport.quantize(in, out, "--recipe", "8da4w");
    assertEquals(2, r.status(), r::toString);
    assertTrue(r.err().contains("holds 'config.json' but no checkpoint shardquant wrote"), r::toString);
    assertEquals("{}", Files.readString(out.resolve("config.json")));
  }
}
