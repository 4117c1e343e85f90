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
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.SafetensorsWriter.Declared;
import shardquant.kernels.safetensors.TensorEntry;

class SyntheticCheckpointTest {
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
      assertEquals(4, listing.count(), "three shards and the index, no temporary files");
    }
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
  }
}
