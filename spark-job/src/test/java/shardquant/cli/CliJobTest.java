package shardquant.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.arrow.ArrowShards;
import shardquant.arrow.QuantizedShard;
import shardquant.arrow.ShardBatch;

/** The commands around the job, as a user runs them: demo, inspect, progress, recipe files, dumps, URIs, indexes. */
class CliJobTest {
  @TempDir
  Path tmp;

  @Test
  void demoWritesQuantizesAndSaysWhere() throws IOException {
    Run r = JobTestSupport.cli("demo", "--bytes", "6m", "--dir", tmp.toString(), "--master", "local[2]",
        "--output-file-bytes", "1m");
    assertEquals(0, r.status(), r::toString);
    Path out = tmp.resolve("output");
    assertTrue(Files.exists(out.resolve("_SUCCESS")), r::toString);
    assertTrue(JobTestSupport.modelFiles(out).size() > 1);
    assertTrue(r.err().contains("demo: writing a synthetic Llama-shaped bf16 checkpoint"), r::toString);
    assertTrue(r.err().lines().anyMatch(l -> l.startsWith("quantize: ") && l.contains(" left")), r::toString);
    assertTrue(Files.exists(tmp.resolve("input").resolve("config.json")), "a Hugging Face model directory");
    assertTrue(Files.exists(tmp.resolve("input").resolve("tokenizer.json")), "a Hugging Face model directory");
    // ... and so is the output: the tokenizer along, config.json with the recipe's quantization_config.
    assertEquals(-1L, Files.mismatch(tmp.resolve("input/tokenizer.json"), out.resolve("tokenizer.json")));
    assertEquals("Int4WeightOnlyConfig", new com.fasterxml.jackson.databind.ObjectMapper().readTree(
        out.resolve("config.json").toFile()).at("/quantization_config/quant_type/default/_type").asText());
    // More tensors than the table lists: the worst ten, and where the others are.
    int quantized = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.resolve("quantization_report.json")
        .toFile()).get("tensors").size();
    assertTrue(quantized > Summary.ALL_UP_TO, quantized + " tensors");
    assertEquals(Summary.WORST, r.out().lines().filter(l -> l.startsWith("model.layers.")).count(), r::toString);
    assertTrue(r.out().contains("(the 10 lowest SQNR; " + (quantized - Summary.WORST) + " more in " + out
        + "/quantization_report.json)"), r::toString);
    assertTrue(r.out().lines().anyMatch(l -> l.startsWith("total: " + quantized + " tensors quantized")
        && l.contains("int4-tile-packed group 128")), r::toString);
    assertTrue(r.out().contains("output: " + out), r::toString);

    Run inspect = JobTestSupport.cli("inspect", out.toString());
    assertEquals(0, inspect.status(), inspect::toString);
    assertTrue(inspect.out().contains("shardquant output: recipe int4-tile-packed"), inspect::toString);
    assertTrue(inspect.out().contains("committed (_SUCCESS)"), inspect::toString);
    assertTrue(inspect.out().contains("Int4TilePackedTo4dTensor"), inspect::toString);
    assertTrue(inspect.out().contains("model.layers.0.mlp.up_proj._weight_qdata"), inspect::toString);

    Run verify = JobTestSupport.cli("verify", "--input", tmp.resolve("input").toString(), "--output", out.toString());
    assertEquals(0, verify.status(), verify::toString);
  }

  @Test
  void verifyFindsAChangedByte() throws IOException {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Path out = tmp.resolve("out");
    assertEquals(0, JobTestSupport.quantize(input, out, "--recipe", "int8-weight-only").status());
    Path file = JobTestSupport.modelFiles(out).get(0);
    byte[] bytes = Files.readAllBytes(file);
    bytes[bytes.length - 1000] ^= 1;
    Files.write(file, bytes);
    Run v = JobTestSupport.cli("verify", "--input", input.toString(), "--output", out.toString());
    assertEquals(3, v.status(), v::toString);
    assertTrue(v.out().lines().anyMatch(l -> l.startsWith("MISMATCH ") && l.contains("differs from re-quantizing")), v::toString);
    assertTrue(v.out().lines().anyMatch(l -> l.startsWith("MISMATCH ") && l.contains("CRC-32C")), v::toString);
    assertTrue(v.out().contains("2 mismatches"), v::toString);
  }

  /** The report is recomputed from the stored tensors: a header whose recorded SQNR was edited is caught. */
  @Test
  void verifyRecomputesTheReportFromTheFiles() throws IOException {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Path out = tmp.resolve("out");
    assertEquals(0, JobTestSupport.quantize(input, out, "--recipe", "8da4w").status());
    Path file = JobTestSupport.modelFiles(out).get(0);
    byte[] bytes = Files.readAllBytes(file);
    String text = new String(bytes, java.nio.charset.StandardCharsets.ISO_8859_1);
    int at = text.indexOf("sqnr_db\\\":\\\"") + "sqnr_db\\\":\\\"".length();
    assertTrue(at > 20 && Character.isDigit(text.charAt(at)), text.substring(0, 400));
    bytes[at] = (byte) (text.charAt(at) == '9' ? '8' : text.charAt(at) + 1);
    Files.write(file, bytes);
    Run v = JobTestSupport.cli("verify", "--input", input.toString(), "--output", out.toString());
    assertEquals(3, v.status(), v::toString);
    assertTrue(v.out().lines().anyMatch(l -> l.startsWith("MISMATCH ") && l.contains("recorded SQNR")), v::toString);
  }

  /** A flipped byte anywhere in any stored tensor of any file is caught, and named. */
  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.ValueSource(strings = {"int4-tile-packed", "8da4w", "nf4"})
  void verifyCatchesAFlippedByteInEveryPart(String recipe) throws IOException {
    Path input = tmp.resolve("in.safetensors");
    java.util.Random rnd = new java.util.Random(1);
    java.util.Map<String, shardquant.kernels.tensor.Tensor> tensors = new java.util.LinkedHashMap<>();
    for (String name : new String[] {"a.q_proj.weight", "a.norm.weight", "b.up_proj.weight"}) {
      long[] shape = name.contains("norm") ? new long[] {256} : new long[] {64, 256};
      float[] v = new float[Math.toIntExact(shardquant.kernels.tensor.Tensor.numel(shape))];
      for (int i = 0; i < v.length; i++) {
        v[i] = (float) rnd.nextGaussian() * 0.02f;
      }
      tensors.put(name, shardquant.kernels.tensor.Tensor.fromFloats(shardquant.kernels.dtype.DType.BF16, shape, v));
    }
    shardquant.kernels.safetensors.SafetensorsWriter.write(input, tensors, java.util.Map.of());
    Path out = tmp.resolve("out");
    Run q = JobTestSupport.quantize(input, out, "--recipe", recipe, "--output-file-bytes", "20000");
    assertEquals(0, q.status(), q::toString);
    int flipped = 0;
    for (Path file : JobTestSupport.modelFiles(out)) {
      java.util.List<shardquant.kernels.safetensors.TensorEntry> entries;
      long dataStart;
      try (shardquant.kernels.safetensors.SafetensorsFile f = shardquant.kernels.safetensors.SafetensorsFile.open(file)) {
        entries = f.entries();
        dataStart = f.dataStart();
      }
      byte[] original = Files.readAllBytes(file);
      for (shardquant.kernels.safetensors.TensorEntry e : entries) {
        byte[] bytes = original.clone();
        int at = Math.toIntExact(dataStart + e.begin() + e.byteSize() / 2);
        bytes[at] ^= 0x10;
        Files.write(file, bytes);
        Run v = JobTestSupport.cli("verify", "--input", input.toString(), "--output", out.toString());
        assertEquals(3, v.status(), () -> e.name() + "\n" + v);
        assertTrue(v.out().lines().anyMatch(l -> l.startsWith("MISMATCH ") && l.contains("'" + e.name() + "'")
            && l.contains("CRC-32C")), () -> e.name() + "\n" + v);
        flipped++;
      }
      Files.write(file, original);
    }
    assertTrue(flipped >= 1 + 2 * Recipe(recipe), "every stored tensor was tried");
    Run clean = JobTestSupport.cli("verify", "--input", input.toString(), "--output", out.toString());
    assertEquals(0, clean.status(), clean::toString);
  }

  private static int Recipe(String name) {
    return shardquant.kernels.quant.Recipe.fromCliName(name).dataNames().size();
  }

  @Test
  void inspectShowsAnInputsTensors() {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Run r = JobTestSupport.cli("inspect", input.toString());
    assertEquals(0, r.status(), r::toString);
    assertTrue(r.out().lines().anyMatch(l -> l.contains("model.layers.1.mlp.down_proj.weight") && l.contains("BF16")
        && l.contains("[256, 768]")), r::toString);
    assertTrue(r.out().contains("19 tensors"), r::toString);
  }

  @Test
  void recipeFileFileUriAndDumpedShards() throws IOException {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Path recipe = tmp.resolve("r.properties");
    Files.writeString(recipe, "recipe=intx-weight-only\ngroup-size=64\nbits=3\ninclude=.*\\\\.mlp\\\\..*\\\\.weight\n");
    Path dumps = tmp.resolve("dumps");
    Run r = JobTestSupport.quantize(Path.of(input.toUri().toString()), tmp.resolve("out"), "--recipe-file",
        recipe.toString(), "--dump-shards", dumps.toString(), "--shard-bytes", "131072");
    assertEquals(0, r.status(), r::toString);
    assertTrue(r.err().contains("6 to quantize with intx-weight-only group 64 bits 3"), r::toString);
    List<Path> files;
    try (Stream<Path> s = Files.list(dumps)) {
      files = s.sorted().toList();
    }
    assertTrue(files.stream().anyMatch(p -> p.getFileName().toString().equals("model.layers.0.mlp.up_proj.weight.rows-0-256.arrow")),
        files::toString);
    try (RootAllocator a = new RootAllocator();
        ShardBatch<?> b = ArrowShards.readIpcFile(dumps.resolve("model.layers.0.mlp.up_proj.weight.rows-256-512.arrow"), a)) {
      QuantizedShard q = (QuantizedShard) b.shard();
      assertEquals(256, q.rowStart());
      assertEquals(List.of("model.layers.0.mlp.up_proj._weight_qdata", "model.layers.0.mlp.up_proj._weight_scale",
          "model.layers.0.mlp.up_proj._weight_zero_point"), q.parts().stream().map(p -> p.key()).toList());
    }
  }

  @Test
  void quantizesADirectoryWithAnIndex() throws IOException {
    Path input = SyntheticCheckpoint.write(tmp.resolve("in"), new SyntheticCheckpoint.Shape(2, 256, 512, 4, 2, 512), 3, 7,
        null);
    Run r = JobTestSupport.quantize(input, tmp.resolve("out"), "--recipe", "int8-weight-only", "--shard-bytes", "64k");
    assertEquals(0, r.status(), r::toString);
    assertTrue(r.err().contains("14 to quantize"), r::toString);
    Run v = JobTestSupport.cli("verify", "--input", input.toString(), "--output", tmp.resolve("out").toString());
    assertEquals(0, v.status(), v::toString);
  }
}
