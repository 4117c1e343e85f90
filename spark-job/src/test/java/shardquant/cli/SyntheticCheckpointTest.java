package shardquant.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.JobTestSupport;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.SafetensorsWriter.Declared;
import shardquant.kernels.safetensors.TensorEntry;

class SyntheticCheckpointTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final SyntheticCheckpoint.Shape TINY = new SyntheticCheckpoint.Shape(2, 256, 768, 4, 2, 1024);

  @TempDir Path dir;

  @Test
  void writesHuggingFaceNamedShardsAndAnIndexCoveringEveryTensorOnce() throws IOException {
    List<Long> progress = new ArrayList<>();
    SyntheticCheckpoint.write(dir, TINY, 3, 7, progress::add);

    List<String> expected = TINY.tensors().stream().map(Declared::name).toList();
    assertEquals(2 + 2 * 9 + 1, expected.size());
    Map<String, String> fileOf = new HashMap<>();
    Map<String, long[]> shapeOf = new HashMap<>();
    List<String> inFileOrder = new ArrayList<>();
    for (int f = 1; f <= 3; f++) {
      String name = String.format("model-%05d-of-00003.safetensors", f);
      try (SafetensorsFile file = SafetensorsFile.open(dir.resolve(name))) {
        assertEquals(Map.of("format", "pt"), file.metadata());
        assertFalse(file.entries().isEmpty(), name + " holds no tensor");
        for (TensorEntry e : file.entries()) {
          assertEquals(DType.BF16, e.dtype(), e.name());
          assertEquals(null, fileOf.put(e.name(), name), e.name() + " is in two files");
          shapeOf.put(e.name(), e.shape());
          inFileOrder.add(e.name());
        }
      }
    }
    assertEquals(expected, inFileOrder);
    long hidden = 256;
    long kv = 2 * 64;
    assertArrayEquals(new long[] {1024, hidden}, shapeOf.get("model.embed_tokens.weight"));
    assertArrayEquals(new long[] {hidden}, shapeOf.get("model.layers.1.input_layernorm.weight"));
    assertArrayEquals(new long[] {hidden, hidden}, shapeOf.get("model.layers.0.self_attn.q_proj.weight"));
    assertArrayEquals(new long[] {kv, hidden}, shapeOf.get("model.layers.0.self_attn.k_proj.weight"));
    assertArrayEquals(new long[] {kv, hidden}, shapeOf.get("model.layers.1.self_attn.v_proj.weight"));
    assertArrayEquals(new long[] {hidden, hidden}, shapeOf.get("model.layers.1.self_attn.o_proj.weight"));
    assertArrayEquals(new long[] {768, hidden}, shapeOf.get("model.layers.0.mlp.gate_proj.weight"));
    assertArrayEquals(new long[] {768, hidden}, shapeOf.get("model.layers.0.mlp.up_proj.weight"));
    assertArrayEquals(new long[] {hidden, 768}, shapeOf.get("model.layers.0.mlp.down_proj.weight"));
    assertArrayEquals(new long[] {hidden}, shapeOf.get("model.layers.0.post_attention_layernorm.weight"));
    assertArrayEquals(new long[] {hidden}, shapeOf.get("model.norm.weight"));
    assertArrayEquals(new long[] {1024, hidden}, shapeOf.get("lm_head.weight"));

    JsonNode index = new ObjectMapper().readTree(dir.resolve("model.safetensors.index.json").toFile());
    assertEquals(TINY.totalBytes(), index.get("metadata").get("total_size").asLong());
    Map<String, String> weightMap = new HashMap<>();
    index.get("weight_map").fields().forEachRemaining(e -> weightMap.put(e.getKey(), e.getValue().asText()));
    assertEquals(fileOf, weightMap);

    long tensorBytes = TINY.tensors().stream().mapToLong(Declared::byteSize).sum();
    assertEquals(tensorBytes, TINY.totalBytes());
    assertEquals(TINY.totalBytes(), progress.get(progress.size() - 1));
    for (int i = 1; i < progress.size(); i++) {
      assertTrue(progress.get(i) > progress.get(i - 1), "progress goes forward");
    }
    try (Stream<Path> listing = Files.list(dir)) {
      assertEquals(List.of("config.json", "generation_config.json", "model-00001-of-00003.safetensors",
          "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json",
          "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"),
          listing.map(p -> p.getFileName().toString()).sorted().toList(), "no temporary files");
    }
  }

  /**
   * config.json describes exactly the tensors written: every tensor LlamaForCausalLM has for the config,
   * with the shape it has there, and no other (what transformers would report as missing or unexpected keys).
   */
  @ParameterizedTest
  @MethodSource("shapes")
  void configDescribesExactlyTheTensorsWritten(SyntheticCheckpoint.Shape shape) throws IOException {
    SyntheticCheckpoint.write(dir, shape, 2, 3, null);
    JsonNode c = JSON.readTree(dir.resolve("config.json").toFile());
    assertEquals("llama", c.get("model_type").asText());
    assertEquals("[\"LlamaForCausalLM\"]", c.get("architectures").toString());
    assertEquals("bfloat16", c.get("dtype").asText());
    assertEquals("bfloat16", c.get("torch_dtype").asText());
    long hidden = c.get("hidden_size").asLong();
    long headDim = c.get("head_dim").asLong();
    long q = c.get("num_attention_heads").asLong() * headDim;
    long kv = c.get("num_key_value_heads").asLong() * headDim;
    long intermediate = c.get("intermediate_size").asLong();
    long vocab = c.get("vocab_size").asLong();
    Map<String, List<Long>> expected = new HashMap<>();
    expected.put("model.embed_tokens.weight", List.of(vocab, hidden));
    expected.put("model.norm.weight", List.of(hidden));
    if (!c.get("tie_word_embeddings").asBoolean()) {
      expected.put("lm_head.weight", List.of(vocab, hidden));
    }
    for (int i = 0; i < c.get("num_hidden_layers").asInt(); i++) {
      String p = "model.layers." + i + ".";
      expected.put(p + "input_layernorm.weight", List.of(hidden));
      expected.put(p + "post_attention_layernorm.weight", List.of(hidden));
      expected.put(p + "self_attn.q_proj.weight", List.of(q, hidden));
      expected.put(p + "self_attn.k_proj.weight", List.of(kv, hidden));
      expected.put(p + "self_attn.v_proj.weight", List.of(kv, hidden));
      expected.put(p + "self_attn.o_proj.weight", List.of(hidden, q));
      expected.put(p + "mlp.gate_proj.weight", List.of(intermediate, hidden));
      expected.put(p + "mlp.up_proj.weight", List.of(intermediate, hidden));
      expected.put(p + "mlp.down_proj.weight", List.of(hidden, intermediate));
    }
    Map<String, List<Long>> written = headerShapes(dir);
    assertEquals(new TreeMap<>(expected), new TreeMap<>(written), shape.toString());
    assertEquals(Set.of(DType.BF16), dtypes(dir));
  }

  /**
   * tokenizer.json is a consistent BPE vocabulary that fits the model's embedding: ids unique, 0..n-1 with
   * n at most vocab_size, every merge joining two tokens into a third, and the special tokens where
   * config.json, generation_config.json, tokenizer_config.json and special_tokens_map.json say they are.
   */
  @ParameterizedTest
  @MethodSource("shapes")
  void tokenizerFitsTheVocabularyAndItsSpecialTokensAgreeWithTheConfig(SyntheticCheckpoint.Shape shape) throws IOException {
    SyntheticCheckpoint.write(dir, shape, 1, 3, null);
    JsonNode config = JSON.readTree(dir.resolve("config.json").toFile());
    JsonNode tokenizer = JSON.readTree(dir.resolve("tokenizer.json").toFile());
    int vocabSize = config.get("vocab_size").asInt();
    Map<String, Integer> vocab = new HashMap<>();
    Set<Integer> ids = new HashSet<>();
    tokenizer.get("model").get("vocab").fields().forEachRemaining(e -> {
      vocab.put(e.getKey(), e.getValue().asInt());
      assertTrue(ids.add(e.getValue().asInt()), "id " + e.getValue() + " twice");
    });
    assertEquals(Math.min(vocabSize, LlamaModelFiles.fullTokenizerSize()), ids.size());
    assertEquals(ids.size() - 1, ids.stream().mapToInt(i -> i).max().orElseThrow(), "ids are 0..n-1");
    assertTrue(ids.size() <= vocabSize);
    for (int b = 0; b < 256; b++) {
      assertTrue(vocab.containsKey(String.format("<0x%02X>", b)), "byte fallback token " + b);
    }
    for (JsonNode m : tokenizer.get("model").get("merges")) {
      String left = m.get(0).asText();
      String right = m.get(1).asText();
      Integer merged = vocab.get(left + right);
      assertTrue(vocab.containsKey(left) && vocab.containsKey(right) && merged != null, m.toString());
      assertTrue(merged > vocab.get(left) && merged > vocab.get(right), m + ": a merge comes after its parts");
    }

    JsonNode generation = JSON.readTree(dir.resolve("generation_config.json").toFile());
    JsonNode tokenizerConfig = JSON.readTree(dir.resolve("tokenizer_config.json").toFile());
    JsonNode specialMap = JSON.readTree(dir.resolve("special_tokens_map.json").toFile());
    Map<String, Integer> addedIds = new HashMap<>();
    for (JsonNode t : tokenizer.get("added_tokens")) {
      assertTrue(t.get("special").asBoolean(), t.toString());
      assertEquals(vocab.get(t.get("content").asText()), t.get("id").asInt(), t.toString());
      addedIds.put(t.get("content").asText(), t.get("id").asInt());
    }
    for (String kind : new String[] {"bos", "eos", "unk"}) {
      String token = tokenizerConfig.get(kind + "_token").asText();
      assertEquals(token, specialMap.get(kind + "_token").get("content").asText(), kind);
      assertTrue(addedIds.containsKey(token), kind + " token " + token + " is a special token");
      if (!kind.equals("unk")) {
        assertEquals(config.get(kind + "_token_id").asInt(), addedIds.get(token), kind + " id in config.json");
        assertEquals(config.get(kind + "_token_id").asInt(), generation.get(kind + "_token_id").asInt(), kind);
      }
    }
    assertEquals(config.get("max_position_embeddings").asInt(), tokenizerConfig.get("model_max_length").asInt());
    assertEquals("[1]", tokenizer.get("post_processor").get("special_tokens").get("<s>").get("ids").toString(),
        "every sequence starts with <s>, as Llama's tokenizer adds it");
  }

  static Stream<SyntheticCheckpoint.Shape> shapes() {
    return Stream.of(TINY, SyntheticCheckpoint.Shape.forBytes(1),
        new SyntheticCheckpoint.Shape(1, 256, 256, 4, 1, LlamaModelFiles.MIN_VOCAB));
  }

  /**
   * For the model transformers 5.18 saved in shared/golden/transformers-5.18/input (the same dimensions),
   * the same tensors, and config.json and generation_config.json as it wrote them, byte for byte, but for
   * our context length and the torch_dtype that transformers 4 needs.
   */
  @Test
  void matchesWhatTransformersWroteForTheSameModel() throws IOException {
    Path golden = JobTestSupport.golden("transformers-5.18").resolve("input");
    SyntheticCheckpoint.write(dir, new SyntheticCheckpoint.Shape(2, 256, 768, 4, 2, 512), 3, 3, null);
    assertEquals(headerShapes(golden), headerShapes(dir));
    String expected = Files.readString(golden.resolve("config.json"))
        .replace("\"max_position_embeddings\": 256,", "\"max_position_embeddings\": " + LlamaModelFiles.MAX_POSITIONS + ",")
        .replace("  \"transformers_version\"", "  \"torch_dtype\": \"bfloat16\",\n  \"transformers_version\"");
    assertEquals(expected, Files.readString(dir.resolve("config.json")));
    assertEquals(Files.readString(golden.resolve("generation_config.json")), Files.readString(dir.resolve("generation_config.json")));
  }

  @Test
  void theTokenizerStaysSmallForALargeVocabulary() {
    byte[] tokenizer = LlamaModelFiles.files(new SyntheticCheckpoint.Shape(1, 256, 256, 4, 1, 32000), false)
        .get("tokenizer.json");
    assertTrue(tokenizer.length < 32 * 1024, tokenizer.length + " bytes");
  }

  @Test
  void pythonFloatsAreWrittenAsPythonWritesThem() {
    for (String[] c : new String[][] {{"1e-06", "1e-6"}, {"1e-05", "1e-5"}, {"0.0001", "1e-4"}, {"0.02", "0.02"},
        {"10000.0", "1e4"}, {"500000.0", "5e5"}, {"0.0", "0"}, {"1.5e-07", "1.5e-7"}, {"1e+16", "1e16"}, {"-2.5", "-2.5"}}) {
      assertEquals(c[0], LlamaModelFiles.pythonFloat(Double.parseDouble(c[1])).toString(), c[1]);
    }
  }

  /** Every tensor's shape, from the headers of the files the index names. */
  private static Map<String, List<Long>> headerShapes(Path dir) throws IOException {
    Map<String, List<Long>> shapes = new HashMap<>();
    for (String file : indexFiles(dir)) {
      try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(file))) {
        for (TensorEntry e : f.entries()) {
          shapes.put(e.name(), Arrays.stream(e.shape()).boxed().toList());
        }
      }
    }
    return shapes;
  }

  private static Set<DType> dtypes(Path dir) throws IOException {
    Set<DType> dtypes = new HashSet<>();
    for (String file : indexFiles(dir)) {
      try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(file))) {
        f.entries().forEach(e -> dtypes.add(e.dtype()));
      }
    }
    return dtypes;
  }

  private static Set<String> indexFiles(Path dir) throws IOException {
    Set<String> files = new TreeSet<>();
    JSON.readTree(dir.resolve("model.safetensors.index.json").toFile()).get("weight_map")
        .forEach(f -> files.add(f.asText()));
    return files;
  }

  @Test
  void sameSeedGivesTheSameBytesAndAnotherSeedOtherBytes() throws IOException {
    Path a = SyntheticCheckpoint.write(dir.resolve("a"), TINY, 3, 42, null);
    Path b = SyntheticCheckpoint.write(dir.resolve("b"), TINY, 3, 42, null);
    Path c = SyntheticCheckpoint.write(dir.resolve("c"), TINY, 3, 43, null);
    for (int f = 1; f <= 3; f++) {
      String name = String.format("model-%05d-of-00003.safetensors", f);
      assertEquals(-1, Files.mismatch(a.resolve(name), b.resolve(name)), name);
      assertNotEquals(-1, Files.mismatch(a.resolve(name), c.resolve(name)), name);
    }
  }

  @Test
  void aTensorsValuesDoNotDependOnTheFileCount() throws IOException {
    Path one = SyntheticCheckpoint.write(dir.resolve("one"), TINY, 1, 5, null);
    Path three = SyntheticCheckpoint.write(dir.resolve("three"), TINY, 3, 5, null);
    try (SafetensorsFile whole = SafetensorsFile.open(one.resolve("model-00001-of-00001.safetensors"));
        SafetensorsFile last = SafetensorsFile.open(three.resolve("model-00003-of-00003.safetensors"))) {
      assertTrue(whole.read("lm_head.weight").contentEquals(last.read("lm_head.weight")));
    }
  }

  @Test
  void weightsAreFiniteWithStd002AndNormsNearOne() throws IOException {
    SyntheticCheckpoint.write(dir, TINY, 3, 11, null);
    List<String> names = TINY.tensors().stream().map(Declared::name).toList();
    int checked = 0;
    for (int f = 1; f <= 3; f++) {
      try (SafetensorsFile file = SafetensorsFile.open(dir.resolve(String.format("model-%05d-of-00003.safetensors", f)))) {
        for (TensorEntry e : file.entries()) {
          float[] v = file.read(e.name()).toFloats();
          double sum = 0;
          double sumSq = 0;
          for (float x : v) {
            assertTrue(Float.isFinite(x), e.name());
            sum += x;
            sumSq += (double) x * x;
          }
          double mean = sum / v.length;
          double std = Math.sqrt(sumSq / v.length - mean * mean);
          boolean norm = e.shape().length == 1;
          assertEquals(norm ? 1.0 : 0.0, mean, norm ? 0.01 : 0.002, e.name() + " mean");
          // bf16 rounding near 1.0 (steps of 2^-7) inflates a norm's spread; weights near 0 keep theirs.
          assertEquals(0.02, std, norm ? 0.006 : 0.001, e.name() + " std");
          checked++;
        }
      }
    }
    assertEquals(names.size(), checked);
  }

  @Test
  void forBytesComesCloseToTheRequestedSizeWithLlamaLikeDimensions() {
    for (long target : new long[] {4L << 20, 16L << 20, 64L << 20, 1_000_000_000L, 4L << 30, 100L << 30}) {
      SyntheticCheckpoint.Shape s = SyntheticCheckpoint.Shape.forBytes(target);
      double error = Math.abs(s.totalBytes() - target) / (double) target;
      assertTrue(error < 0.02, s + " is " + s.totalBytes() + " bytes for " + target);
      assertEquals(0, s.hidden() % 256, s.toString());
      assertEquals(0, s.intermediate() % 256, s.toString());
      assertEquals(0, s.vocab() % 256, s.toString());
      assertEquals(64, s.headDim(), s.toString());
    }
    SyntheticCheckpoint.Shape oneGb = SyntheticCheckpoint.Shape.forBytes(1_000_000_000L);
    assertTrue(oneGb.layers() >= 8 && oneGb.hidden() >= 1024, oneGb.toString());
    SyntheticCheckpoint.Shape smallest = SyntheticCheckpoint.Shape.forBytes(1);
    assertEquals(1, smallest.layers());
    assertEquals(256, smallest.hidden());
  }

  @Test
  void refusesBadArgumentsWithTheValues() {
    IllegalArgumentException files = assertThrows(IllegalArgumentException.class,
        () -> SyntheticCheckpoint.write(dir, TINY, 0, 1, null));
    assertTrue(files.getMessage().contains("got 0"), files.getMessage());
    assertThrows(IllegalArgumentException.class, () -> SyntheticCheckpoint.write(dir, TINY, 22, 1, null));
    IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
        () -> new SyntheticCheckpoint.Shape(2, 250, 768, 4, 2, 1024));
    assertTrue(shape.getMessage().contains("hidden=250"), shape.getMessage());
    IllegalArgumentException vocab = assertThrows(IllegalArgumentException.class,
        () -> new SyntheticCheckpoint.Shape(2, 256, 768, 4, 2, LlamaModelFiles.MIN_VOCAB - 1));
    assertTrue(vocab.getMessage().contains("vocab=259") && vocab.getMessage().contains("at least 260"), vocab.getMessage());
  }
}
