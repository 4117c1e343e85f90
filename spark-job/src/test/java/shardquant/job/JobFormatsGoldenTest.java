package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.TensorEntry;

/**
 * The bar: quantizing the golden Llama-shaped input with each recipe torchao serializes gives
 * torchao's stored tensors and per-tensor metadata byte for byte, in one shard per tensor and one
 * file, and in many 64 KiB shards over many 1 MB files.
 */
class JobFormatsGoldenTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final TypeReference<List<String>> STRINGS = new TypeReference<>() {};

  @TempDir
  Path tmp;

  @ParameterizedTest(name = "{1} {2}")
  @CsvSource({
      "format_int4_tile_packed_to_4d_g128, int4-tile-packed, --shard-bytes=1g",
      "format_int4_tile_packed_to_4d_g128, int4-tile-packed, --shard-bytes=65536 --output-file-bytes=1000000",
      "format_8da4w_g32, 8da4w, --shard-bytes=1g",
      "format_8da4w_g32, 8da4w, --shard-bytes=65536 --output-file-bytes=1000000",
      "format_intx_w4_g32, intx-weight-only, --shard-bytes=1g",
      "format_intx_w4_g32, intx-weight-only, --shard-bytes=65536 --output-file-bytes=1000000",
      "format_int8_weight_only, int8-weight-only, --shard-bytes=1g",
      "format_int8_weight_only, int8-weight-only, --shard-bytes=65536 --output-file-bytes=1000000",
      "format_int8_dyn_act_int8_weight, int8-dynamic, --shard-bytes=1g",
      "format_int8_dyn_act_int8_weight, int8-dynamic, --shard-bytes=65536 --output-file-bytes=1000000"})
  void matchesTorchao(String golden, String recipe, String sizes) throws IOException {
    Path dir = JobTestSupport.golden("torchao-0.19-formats");
    Path out = tmp.resolve("out");
    List<String> args = new ArrayList<>(List.of("--recipe", recipe));
    for (String s : sizes.split(" ")) {
      args.addAll(List.of(s.split("=")));
    }
    Run r = JobTestSupport.quantize(dir.resolve("input.safetensors"), out, args.toArray(new String[0]));
    assertEquals(0, r.status(), r::toString);

    Path expected = dir.resolve(golden + ".safetensors");
    assertEquals(JobTestSupport.storedTensorsOf(expected), JobTestSupport.storedTensors(out));
    Map<String, String> ours = JobTestSupport.metadata(out);
    try (SafetensorsFile t = SafetensorsFile.open(expected)) {
      for (Map.Entry<String, String> m : t.metadata().entrySet()) {
        if (!m.getKey().equals("tensor_names")) {
          assertEquals(m.getValue(), ours.get(m.getKey()), m.getKey());
        }
      }
      // Every output file carries the whole model's tensor_names, as torchao's single file does. Compared as
      // lists, not as JSON text (spacing is the writer's), and sorted: torchao lists its modules' order, which
      // a safetensors input no longer has (its keys are sorted on save); the output keeps the input's order.
      List<String> names = JSON.readValue(t.metadata().get("tensor_names"), STRINGS);
      List<String> inputOrder;
      try (SafetensorsFile in = SafetensorsFile.open(dir.resolve("input.safetensors"))) {
        inputOrder = in.entries().stream().map(TensorEntry::name).toList();
      }
      for (Path f : JobTestSupport.modelFiles(out)) {
        try (SafetensorsFile o = SafetensorsFile.open(f)) {
          String listed = o.metadata().get("tensor_names");
          assertTrue(listed != null, f + " has no tensor_names");
          List<String> ourNames = JSON.readValue(listed, STRINGS);
          assertEquals(names.stream().sorted().toList(), ourNames.stream().sorted().toList(), f.getFileName() + ": tensor_names");
          assertEquals(inputOrder, ourNames, f.getFileName() + ": tensor_names in the input's order");
        }
      }
    }
    boolean many = sizes.contains("65536");
    assertTrue(many ? JobTestSupport.modelFiles(out).size() > 1 : JobTestSupport.modelFiles(out).size() == 1,
        JobTestSupport.modelFiles(out)::toString);
    assertEquals(List.of("_SUCCESS", "model.safetensors.index.json", "quantization_report.json"),
        JobTestSupport.listing(out).stream().filter(n -> !n.startsWith("model-")).toList());

    Run v = JobTestSupport.cli("verify", "--input", dir.resolve("input.safetensors").toString(), "--output", out.toString());
    assertEquals(0, v.status(), v::toString);
    assertTrue(v.out().contains("0 mismatches"), v::toString);
  }

  /** NF4 has a tensor-wide mean (a first pass): its output must not depend on the sharding either. */
  @Test
  void nf4IsTheSameInOneShardAndInMany() throws IOException {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Run one = JobTestSupport.quantize(input, tmp.resolve("one"), "--recipe", "nf4", "--shard-bytes", "1g");
    assertEquals(0, one.status(), one::toString);
    Run many = JobTestSupport.quantize(input, tmp.resolve("many"), "--recipe", "nf4", "--shard-bytes", "32768",
        "--output-file-bytes", "300000");
    assertEquals(0, many.status(), many::toString);
    assertTrue(JobTestSupport.modelFiles(tmp.resolve("many")).size() > 3);
    assertEquals(JobTestSupport.storedTensors(tmp.resolve("one")), JobTestSupport.storedTensors(tmp.resolve("many")));
    Run v = JobTestSupport.cli("verify", "--input", input.toString(), "--output", tmp.resolve("many").toString());
    assertEquals(0, v.status(), v::toString);
  }

  /** int4-cpu has no torchao file here; its sharded output must still equal its unsharded one. */
  @Test
  void int4CpuIsTheSameInOneShardAndInMany() throws IOException {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Run one = JobTestSupport.quantize(input, tmp.resolve("one"), "--recipe", "int4-cpu", "--group-size", "64");
    assertEquals(0, one.status(), one::toString);
    Run many = JobTestSupport.quantize(input, tmp.resolve("many"), "--recipe", "int4-cpu", "--group-size", "64",
        "--shard-bytes", "32768", "--output-file-bytes", "300000");
    assertEquals(0, many.status(), many::toString);
    assertEquals(JobTestSupport.storedTensors(tmp.resolve("one")), JobTestSupport.storedTensors(tmp.resolve("many")));
    assertTrue(Files.exists(tmp.resolve("many").resolve("_SUCCESS")));
  }
}
