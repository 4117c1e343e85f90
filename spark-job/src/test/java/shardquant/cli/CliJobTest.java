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
    assertTrue(r.out().contains("model.layers.0.self_attn.q_proj.weight"), r::toString);
    assertTrue(r.out().lines().anyMatch(l -> l.startsWith("total: ") && l.contains("int4-tile-packed group 128")), r::toString);
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
    assertTrue(v.out().lines().anyMatch(l -> l.startsWith("MISMATCH ") && l.contains("differs at file byte")), v::toString);
    assertTrue(v.out().contains("1 mismatches"), v::toString);
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
