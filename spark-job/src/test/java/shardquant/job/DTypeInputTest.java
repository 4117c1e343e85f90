package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static shardquant.job.BadInputTest.Q;
import static shardquant.job.BadInputTest.UP;
import static shardquant.job.BadInputTest.assertRefused;
import static shardquant.job.BadInputTest.model;
import static shardquant.job.BadInputTest.raw;
import static shardquant.job.BadInputTest.write;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * Issue 12, "Input that is valid but unusual": a tensor of any dtype safetensors has is read, and copied
 * byte for byte unless selected; only the dtypes a recipe takes are selected by default, so an FP8
 * checkpoint's FP8 weights are copied beside the quantized bf16 ones. Selecting one explicitly is refused
 * by name.
 */
class DTypeInputTest {
  /** 2-D and named like a Linear weight, so only its dtype keeps the default rule from selecting it. */
  static final String DOWN = "model.layers.0.mlp.down_proj.weight";

  @TempDir Path tmp;

  /** Bytes 0, 37, 74, ...: every bit pattern of a narrow dtype, NaNs and infinities included. */
  static Tensor pattern(DType dtype, long rows, long cols) {
    ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(rows * cols * dtype.byteSize())).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < b.capacity(); i++) {
      b.put(i, (byte) (i * 37));
    }
    return Tensor.of(dtype, new long[] {rows, cols}, b);
  }

  /**
   * With {@code --shard-bytes 1024} the odd tensor is cut into several row shards and assembled again,
   * so its row size is used, not only its total.
   */
  @ParameterizedTest
  @EnumSource(value = DType.class, mode = EnumSource.Mode.EXCLUDE, names = {"F32", "BF16", "F16"})
  void aTensorOfEveryDtypeNoRecipeTakesIsCopiedUnchanged(DType dtype) throws IOException {
    Map<String, Tensor> m = model(3);
    m.put(DOWN, pattern(dtype, 40, 24));
    Path in = write(tmp.resolve(dtype + ".safetensors"), m);
    Path out = tmp.resolve("out");

    Run r = JobTestSupport.quantize(in, out, "--recipe", "8da4w", "--shard-bytes", "1024");

    assertEquals(0, r.status(), r::toString);
    Map<String, String> stored = JobTestSupport.storedTensors(out);
    assertEquals(JobTestSupport.storedTensorsOf(in).get(DOWN), stored.get(DOWN), "copied byte for byte");
    assertTrue(stored.keySet().stream().anyMatch(k -> k.startsWith("model.layers.0.mlp.up_proj._weight_")),
        "the bf16 weight beside it is quantized: " + stored.keySet());
  }

  /**
   * An FP8 checkpoint (DeepSeek-V3's layout): FP8 Linear weights with F32 block scales beside bf16 ones.
   * The default copies the FP8 weight and its scales and quantizes the bf16 weight; verify agrees.
   */
  @Test
  void fp8WeightsAreCopiedByDefault() throws IOException {
    Map<String, Tensor> m = model(4);
    m.put(UP, pattern(DType.F8_E4M3, 64, 64));
    m.put("model.layers.0.mlp.up_proj.weight_scale_inv", Tensor.fromFloats(DType.F32, new long[] {1, 1}, new float[] {
        0.5f}));
    Path in = write(tmp.resolve("fp8.safetensors"), m);
    Path out = tmp.resolve("out");

    Run r = JobTestSupport.quantize(in, out, "--recipe", "8da4w");

    assertEquals(0, r.status(), r::toString);
    Map<String, String> want = JobTestSupport.storedTensorsOf(in);
    Map<String, String> stored = JobTestSupport.storedTensors(out);
    assertEquals(want.get(UP), stored.get(UP));
    assertTrue(stored.get(UP).startsWith("F8_E4M3[64, 64]"), stored.get(UP));
    assertTrue(stored.keySet().stream().anyMatch(k -> k.startsWith("model.layers.0.self_attn.q_proj._weight_")),
        stored.keySet().toString());
    assertFalse(stored.containsKey(Q), "the bf16 weight is quantized, not copied");
    Run v = JobTestSupport.cli("verify", "--input", in.toString(), "--output", out.toString());
    assertEquals(0, v.status(), v::toString);
  }

  @Test
  void anFp8WeightSelectedByIncludeIsRefusedByName() throws IOException {
    Map<String, Tensor> m = model(5);
    m.put(UP, pattern(DType.F8_E4M3, 64, 64));
    Path in = write(tmp.resolve("fp8.safetensors"), m);
    Path out = tmp.resolve("out");

    String line = assertRefused(JobTestSupport.quantize(in, out, "--recipe", "8da4w", "--include", ".*up_proj.*"), out,
        "fp8.safetensors", UP, "F8_E4M3", "F32, BF16, F16");
    assertTrue(line.contains("its dtype F8_E4M3 is not one a recipe takes"), line);
    assertFalse(Files.exists(out), "nothing is created for input refused at planning");
  }

  /** The MX element types pack two or more elements into a byte; shardquant refuses them by name. */
  @ParameterizedTest
  @ValueSource(strings = {"F4", "F6_E2M3"})
  void aSubByteDtypeIsRefusedByName(String dtype) throws IOException {
    String header = "{\"" + Q + "\":{\"dtype\":\"BF16\",\"shape\":[32,64],\"data_offsets\":[0,4096]},"
        + "\"model.layers.0.mlp.experts.0.up_proj.weight\":{\"dtype\":\"" + dtype + "\",\"shape\":[64,32],"
        + "\"data_offsets\":[4096," + (4096 + (dtype.equals("F4") ? 1024 : 1536)) + "]}}";
    Path in = raw(tmp.resolve("mx.safetensors"), header, 4096 + (dtype.equals("F4") ? 1024 : 1536));
    Path out = tmp.resolve("out");

    String line = assertRefused(JobTestSupport.quantize(in, out, "--recipe", "8da4w"), out, "mx.safetensors",
        "model.layers.0.mlp.experts.0.up_proj.weight", dtype);
    assertTrue(line.contains("narrower than a byte"), line);
    assertFalse(Files.exists(out));
  }
}
