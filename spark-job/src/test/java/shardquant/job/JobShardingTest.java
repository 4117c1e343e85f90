package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.io.TempDir;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.safetensors.SafetensorsWriter;
import shardquant.kernels.tensor.Tensor;

/**
 * Awkward shapes through the whole job: N not a multiple of the recipe's padding, f16 and f32 weights,
 * 3-D and scalar tensors copied along, tiny shards over many files. The output must not depend on the
 * sharding, and verify must find it equal to the reference.
 */
class JobShardingTest {
  @TempDir
  Path tmp;

  @ParameterizedTest(name = "{0} {1}")
  @CsvSource({"int4-tile-packed, 64, BF16", "int4-cpu, 32, BF16", "8da4w, 32, F16", "intx-weight-only, 64, F32",
      "int8-dynamic, 0, F32", "nf4, 64, BF16"})
  void outputDoesNotDependOnSharding(String recipe, int group, DType dtype) throws IOException {
    Path input = tmp.resolve("in.safetensors");
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    Random rnd = new Random(5);
    // int4-cpu needs N % 16 == 0, nf4 whole 64x256-element blocks; the rest take any N.
    boolean cpu = recipe.equals("int4-cpu");
    boolean nf4 = recipe.equals("nf4");
    tensors.put("blocks.0.attn.weight", random(rnd, dtype, cpu ? 208 : nf4 ? 192 : 100, 256));
    tensors.put("blocks.0.mlp.weight", random(rnd, dtype, cpu ? 64 : nf4 ? 96 : 37, nf4 ? 512 : 384));
    tensors.put("blocks.0.conv.weight", random(rnd, dtype, 4, 3, 5));
    tensors.put("blocks.0.norm.weight", random(rnd, dtype, 256));
    tensors.put("scale", random(rnd, DType.F32));
    SafetensorsWriter.write(input, tensors, Map.of("format", "pt"));
    String[] common = {"--recipe", recipe, "--group-size", Integer.toString(group)};
    Run whole = JobTestSupport.quantize(input, tmp.resolve("whole"), concat(common, "--shard-bytes", "1g"));
    assertEquals(0, whole.status(), whole::toString);
    Run sharded = JobTestSupport.quantize(input, tmp.resolve("sharded"), concat(common, "--shard-bytes", "4096",
        "--output-file-bytes", "20000"));
    assertEquals(0, sharded.status(), sharded::toString);
    assertEquals(JobTestSupport.storedTensors(tmp.resolve("whole")), JobTestSupport.storedTensors(tmp.resolve("sharded")));
    Run v = JobTestSupport.cli("verify", "--input", input.toString(), "--output", tmp.resolve("sharded").toString());
    assertEquals(0, v.status(), v::toString);
  }

  private static Tensor random(Random rnd, DType dtype, long... shape) {
    float[] v = new float[Math.toIntExact(Tensor.numel(shape))];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) (rnd.nextGaussian() * 0.02);
    }
    return Tensor.fromFloats(dtype, shape, v);
  }

  private static String[] concat(String[] a, String... b) {
    String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }
}
