package shardquant.kernels.golden;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.safetensors.SafetensorsWriter;
import shardquant.kernels.tensor.Tensor;

class GoldenRunnerTest {
  @TempDir Path dir;

  /** The acceptance bar of the kernels issue: every torchao 0.19 case passes. */
  @Test
  void everyTorchao019CasePasses() throws IOException {
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    GoldenRunner.Result r = GoldenRunner.run(GoldenFiles.dir("torchao-0.19"), new PrintStream(buf, true, StandardCharsets.UTF_8));
    String out = buf.toString(StandardCharsets.UTF_8);
    assertEquals(0, r.failed(), out);
    assertEquals(40, r.passed(), out);
    assertTrue(out.endsWith("golden: 40 passed, 0 failed\n"), out);
  }

  @Test
  void unknownKindsMissingFilesAndUncomparedTensorsFail() throws IOException {
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    tensors.put("w", Tensor.fromFloats(DType.F32, new long[] {2}, new float[] {1, 2}));
    tensors.put("out", Tensor.fromFloats(DType.F32, new long[] {2}, new float[] {1, 2}));
    SafetensorsWriter.write(dir.resolve("a.safetensors"), tensors, Map.of());
    Files.writeString(dir.resolve("index.json"), "{\"cases\": ["
        + "{\"file\": \"a.safetensors\", \"kind\": \"no_such_kind\"},"
        + "{\"file\": \"missing.safetensors\", \"kind\": \"toy\"},"
        + "{\"file\": \"a.safetensors\", \"kind\": \"toy\"}]}");
    GoldenKind comparesNothing = new GoldenKind() {
      @Override
      public String kind() {
        return "toy";
      }

      @Override
      public void check(GoldenCase c, GoldenReport r) {}
    };
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    GoldenRunner.Result r = GoldenRunner.run(dir, new PrintStream(buf, true, StandardCharsets.UTF_8), k -> true,
        java.util.List.of(comparesNothing));
    String out = buf.toString(StandardCharsets.UTF_8);
    assertEquals(new GoldenRunner.Result(0, 3), r, out);
    assertTrue(out.contains("FAIL a.safetensors [toy]: out: expected but never compared"), out);
    assertTrue(out.contains("FAIL a.safetensors [no_such_kind]: no checker for kind 'no_such_kind'"), out);
    assertTrue(out.contains("FAIL missing.safetensors [toy]"), out);
    assertTrue(out.contains("no such file"), out);
    assertTrue(out.endsWith("golden: 0 passed, 3 failed\n"), out);
  }

  @Test
  void reportsTheFirstDifferingIndexAndTheUlpAndFractionRules() throws IOException {
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    tensors.put("w", Tensor.fromFloats(DType.BF16, new long[] {4}, new float[] {1, 2, 3, 4}));
    tensors.put("same", Tensor.fromFloats(DType.BF16, new long[] {4}, new float[] {1, 2, 3, 4}));
    tensors.put("flipped", Tensor.fromFloats(DType.BF16, new long[] {4}, new float[] {1, 2, 3, 4}));
    tensors.put("ulp", Tensor.fromFloats(DType.BF16, new long[] {4}, new float[] {1, 2, 3, 4}));
    tensors.put("codes", Tensor.fromInts(DType.U8, new long[] {4}, new int[] {0, 1, 2, 3}));
    tensors.put("ignored", Tensor.fromInts(DType.U8, new long[] {1}, new int[] {0}));
    SafetensorsWriter.write(dir.resolve("c.safetensors"), tensors, Map.of());
    Files.writeString(dir.resolve("index.json"), "{\"cases\": [{\"file\": \"c.safetensors\", \"kind\": \"toy\"}]}");
    GoldenKind toy = new GoldenKind() {
      @Override
      public String kind() {
        return "toy";
      }

      @Override
      public java.util.Set<String> notChecked() {
        return java.util.Set.of("ignored");
      }

      @Override
      public void check(GoldenCase c, GoldenReport r) throws IOException {
        r.exact("same", c.tensor("w"));
        r.exact("flipped", Tensor.fromFloats(DType.BF16, new long[] {4}, new float[] {1, 2.015625f, 3, 4}));
        // One bf16 ulp above 4 is 4.03125: allowed at 1 ulp; two ulps above 1 is not.
        r.withinUlps("ulp", Tensor.fromFloats(DType.BF16, new long[] {4}, new float[] {1.015625f, 2, 3, 4.03125f}), 1);
        r.fractionEqual("codes", Tensor.fromInts(DType.U8, new long[] {4}, new int[] {0, 1, 2, 9}), 0.75);
      }
    };
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    GoldenRunner.Result r = GoldenRunner.run(dir, new PrintStream(buf, true, StandardCharsets.UTF_8), k -> true,
        java.util.List.of(toy));
    String out = buf.toString(StandardCharsets.UTF_8);
    assertEquals(new GoldenRunner.Result(0, 1), r, out);
    assertTrue(out.contains("flipped: first difference at flat index 1 (expected 2.0 (0x40000000), got 2.015625"), out);
    assertTrue(out.contains("ulp: first difference at flat index 0"), out);
    assertTrue(!out.contains("codes:") && !out.contains("same:") && !out.contains("ignored"), out);
    assertTrue(out.contains("toy: 0 passed, 1 failed"), out);
  }
}
