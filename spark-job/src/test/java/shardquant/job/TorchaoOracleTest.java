package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.TorchEnv;
import shardquant.kernels.safetensors.SafetensorsFile;

/**
 * torchao itself, run in CI on CPU, as a live oracle beside the golden files ({@code tools/torchao_oracle.py}):
 * a small bf16 model trained a few steps with torchao's QAT flow and converted equals shardquant's 8da4w and
 * intx-weight-only output of the trained weights byte for byte, with a new seed and shape every run
 * (printed); and torchao's {@code unflatten_tensor_state_dict} loads shardquant's output of every recipe it
 * serializes, several files each, into its own tensor types with nothing left over.
 */
class TorchaoOracleTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path tmp;

  @Test
  void qatConvertEqualsShardquantOnTheTrainedWeights() throws IOException {
    long seed = new Random().nextInt(Integer.MAX_VALUE);
    TorchEnv.Result made = TorchEnv.run("torchao_oracle.py", List.of("qat", tmp.toString(), Long.toString(seed)), 300);
    assertEquals(0, made.status(), made::output);
    System.out.println("torchao QAT oracle: " + made.output().lines().filter(l -> l.startsWith("seed ")).findFirst().orElse(""));
    for (String recipe : List.of("8da4w", "intx-weight-only")) {
      Path out = tmp.resolve("out-" + recipe);
      Run r = JobTestSupport.quantize(tmp.resolve("input_" + recipe + ".safetensors"), out, "--recipe", recipe,
          "--shard-bytes", "4096");
      assertEquals(0, r.status(), r::toString);
      Path expected = tmp.resolve("expected_" + recipe + ".safetensors");
      String context = recipe + ", " + made.output().lines().filter(l -> l.startsWith("seed ")).findFirst().orElse("");
      assertEquals(JobTestSupport.storedTensorsOf(expected), JobTestSupport.storedTensors(out), context);
      Map<String, String> ours = JobTestSupport.metadata(out);
      try (SafetensorsFile t = SafetensorsFile.open(expected)) {
        for (Map.Entry<String, String> m : t.metadata().entrySet()) {
          if (m.getKey().equals("tensor_names")) { // ours follows the input file's order, torchao's the module's
            assertEquals(new HashSet<>(List.of(JSON.readValue(m.getValue(), String[].class))),
                new HashSet<>(List.of(JSON.readValue(ours.get("tensor_names"), String[].class))), context);
          } else {
            assertEquals(m.getValue(), ours.get(m.getKey()), context + ": " + m.getKey());
          }
        }
      }
    }
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource({"int4-tile-packed, Int4TilePackedTo4dTensor", "8da4w, IntxUnpackedToInt8Tensor",
      "intx-weight-only, IntxUnpackedToInt8Tensor", "int8-weight-only, Int8Tensor", "int8-dynamic, Int8Tensor"})
  void torchaoUnflattensEveryRecipeItSerializes(String recipe, String type) throws IOException {
    Path out = tmp.resolve("out");
    Run r = JobTestSupport.quantize(JobTestSupport.golden("transformers-5.18").resolve("input"), out, "--recipe", recipe,
        "--output-file-bytes", "400000");
    assertEquals(0, r.status(), r::toString);
    assertTrue(JobTestSupport.modelFiles(out).size() > 1);
    TorchEnv.Result check = TorchEnv.run("torchao_oracle.py", List.of("unflatten", out.toString(), type), 300);
    assertEquals(0, check.status(), check::output);
    assertTrue(check.output().contains("ok: 14 tensors unflattened as " + type), check::output);
  }
}
