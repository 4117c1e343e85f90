package shardquant.kernels.golden;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.layout.CpuInt4Layout;
import shardquant.kernels.layout.TensorCoreTiledInt4Layout;
import shardquant.kernels.quant.AffineQuantRef;
import shardquant.kernels.quant.AffineSpec;
import shardquant.kernels.quant.BlockSize;
import shardquant.kernels.quant.FakeQuantRef;
import shardquant.kernels.quant.MappingType;
import shardquant.kernels.quant.Nf4Ref;
import shardquant.kernels.quant.QParams;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.RecipeShardingTest;
import shardquant.kernels.quant.ZeroPointDomain;
import shardquant.kernels.safetensors.SafetensorsWriter;
import shardquant.kernels.tensor.Tensor;

/**
 * Rows that hold exactly one group (K equal to the group size) in every golden kind, for every group size.
 * The public golden set has none; torchao's own such cases come from {@code tools/golden_one_group.py}
 * (spark-job's GoldenOneGroupTest runs it live). Here the cases are built from the reference's values but
 * in the shapes torchao gives them, written literally below, so that every build checks that the runner
 * meets those shapes: tinygemm's scale and zero [N, 1] and scale_and_zero [1, N, 2] (torchao reshapes the
 * primitive's [N] to [N, K/g] before packing), QAT's per-group qparams [N, 1], affine's [N]
 * (choose_qparams_affine drops a dimension one block covers whole), NF4 rows of one 64-element block.
 */
class OneGroupRowsGoldenTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int[] GROUPS = {32, 64, 128, 256};

  @TempDir Path dir;

  private final ArrayNode cases = JSON.createArrayNode();

  @Test
  void everyKindPassesOnRowsOfOneGroup() throws IOException {
    for (int g : GROUPS) {
      tinygemm(64, g);
      tinygemm(40, g);
      affine(48, g, MappingType.SYMMETRIC, -8, 7);
      affine(48, g, MappingType.ASYMMETRIC, -8, 7);
      qat(32, g, "torch.int4", MappingType.SYMMETRIC, "INT");
      qat(32, g, "torch.uint4", MappingType.ASYMMETRIC, "FLOAT");
    }
    nf4(DType.BF16);
    nf4(DType.F32);
    ObjectNode index = JSON.createObjectNode();
    index.set("cases", cases);
    Files.writeString(dir.resolve("index.json"), index.toString());

    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    GoldenRunner.Result r = GoldenRunner.run(dir, new PrintStream(buf, true, StandardCharsets.UTF_8));
    String out = buf.toString(StandardCharsets.UTF_8);
    assertEquals(new GoldenRunner.Result(cases.size(), 0), r, out);
    assertTrue(out.contains("tinygemm_int4: 8 passed, 0 failed"), out);
    assertTrue(out.contains("qat_fake_quant: 8 passed, 0 failed"), out);
  }

  /** tinygemm_int4 [n, g]: every tensor the golden README lists that a CPU can make, plus the tiled packings. */
  private void tinygemm(int n, int g) throws IOException {
    Tensor w = RecipeShardingTest.weights(n, g, DType.BF16, 31L * n + g);
    AffineSpec spec = AffineSpec.tinygemmInt4(g, DType.BF16);
    QParams primitive = AffineQuantRef.chooseQParams(w, spec);
    assertArrayEquals(new long[] {n}, primitive.scale().shape(), "the primitive drops the dimension of one group");
    Tensor scale = primitive.scale().reshape(n, 1);
    Tensor zero = primitive.zeroPoint().reshape(n, 1);
    Tensor q = AffineQuantRef.quantize(w, spec, primitive);
    Map<String, Tensor> t = new LinkedHashMap<>();
    t.put("w", w);
    t.put("scale", scale);
    t.put("zero", zero);
    t.put("q", q);
    t.put("dq", AffineQuantRef.dequantize(q, spec, primitive, DType.BF16));
    // pack_tinygemm_scales_and_zeros of [n, 1] and [n, 1]: [1, n, 2], scale then zero per row.
    ByteBuffer sz = ByteBuffer.allocate(4 * n).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    for (int r = 0; r < n; r++) {
      sz.putShort(scale.bytes().getShort(2 * r)).putShort(zero.bytes().getShort(2 * r));
    }
    t.put("scale_and_zero", Tensor.of(DType.BF16, new long[] {1, n, 2}, sz.flip()));
    int[] codes = q.toInts();
    for (int ikt : new int[] {2, 4, 8}) {
      if (g % (16 * ikt) == 0) {
        long[] shape = {n / 8, g / (16 * ikt), 32, ikt / 2};
        assertArrayEquals(shape, TensorCoreTiledInt4Layout.packedShape(n, g, ikt));
        t.put("packed_tc_ikt" + ikt, Tensor.fromInts(DType.I32, shape, TensorCoreTiledInt4Layout.pack(codes, n, g, ikt)));
      }
    }
    if (n % 16 == 0) {
      t.put("packed_cpu", Tensor.of(DType.U8, new long[] {n, g / 2}, ByteBuffer.wrap(CpuInt4Layout.pack(codes, n, g))));
    }
    ObjectNode p = JSON.createObjectNode();
    p.put("group_size", g);
    add("tinygemm_int4_" + n + "x" + g + "_g" + g, "tinygemm_int4", p, t);
  }

  /** affine [n, g], block (1, g): choose_qparams_affine's scale and zero point are [n]. */
  private void affine(int n, int g, MappingType mapping, int qmin, int qmax) throws IOException {
    Tensor w = RecipeShardingTest.weights(n, g, DType.F32, 17L * n + g + mapping.ordinal());
    double eps = Math.ulp(1.0f);
    AffineSpec spec = new AffineSpec(mapping, BlockSize.group(g), DType.I8, qmin, qmax, eps, DType.F32, DType.I32,
        ZeroPointDomain.INT);
    QParams qp = AffineQuantRef.chooseQParams(w, spec);
    assertArrayEquals(new long[] {n}, qp.scale().shape());
    Tensor q = AffineQuantRef.quantize(w, spec, qp);
    Map<String, Tensor> t = new LinkedHashMap<>();
    t.put("w", w);
    t.put("scale", qp.scale());
    t.put("zero_point", qp.zeroPoint());
    t.put("q", q);
    t.put("dq", AffineQuantRef.dequantize(q, spec, qp, DType.F32));
    ObjectNode p = JSON.createObjectNode();
    p.put("mapping", mapping.name());
    p.set("block_size", JSON.createArrayNode().add(1).add(g));
    p.put("target_dtype", "int8");
    p.put("quant_min", qmin);
    p.put("quant_max", qmax);
    p.put("eps", eps);
    p.put("scale_dtype", "float32");
    p.put("zero_point_dtype", "int32");
    p.put("input_dtype", "float32");
    add("affine_" + mapping.name().toLowerCase() + "_" + n + "x" + g, "affine", p, t);
  }

  /** qat_fake_quant [n, g] with PerGroup(g): IntxFakeQuantizer holds scale and zero point [n, 1]. */
  private void qat(int n, int g, String dtype, MappingType mapping, String domain) throws IOException {
    String config = "IntxFakeQuantizeConfig(dtype=" + dtype + ", granularity=PerGroup(group_size=" + g + "),"
        + " mapping_type=<MappingType." + mapping.name() + ": " + (mapping == MappingType.SYMMETRIC ? 1 : 3) + ">,"
        + " scale_precision=torch.float32, zero_point_precision=torch.int32, zero_point_domain=<ZeroPointDomain."
        + domain + ": " + (domain.equals("INT") ? 1 : 2) + ">, is_dynamic=True, range_learning=False, eps=None)";
    Tensor x = RecipeShardingTest.weights(n, g, DType.F32, 7L * n + g);
    Tensor gradOut = RecipeShardingTest.weights(n, g, DType.F32, 7L * n + g + 1);
    FakeQuantRef.FakeQuantized fq = FakeQuantRef.forward(x, QatFakeQuantKind.parse(config));
    Map<String, Tensor> t = new LinkedHashMap<>();
    t.put("x", x);
    t.put("y", fq.y());
    t.put("grad_out", gradOut);
    t.put("grad_in", fq.backward(gradOut));
    t.put("scale", fq.qparams().scale().reshape(n, 1));
    t.put("zero_point", Tensor.fromFloats(DType.F32, new long[] {n, 1}, fq.qparams().zeroPoint().toFloats()));
    ObjectNode p = JSON.createObjectNode();
    p.put("group_size", g);
    p.put("config", config);
    add("qat_" + dtype.substring(6) + "_" + n + "x" + g, "qat_fake_quant", p, t);
  }

  /** nf4 [256, 64]: every row one NF4 block (the fewest rows torchao's 256-scaler blocks allow). */
  private void nf4(DType d) throws IOException {
    Tensor w = RecipeShardingTest.weights(256, Nf4Ref.BLOCK_SIZE, d, 3);
    QuantizedTensor q = Nf4Ref.quantize(w);
    Map<String, Tensor> t = new LinkedHashMap<>();
    t.put("w", w);
    t.put("quantized_data", q.part("quantized_data"));
    t.put("quantized_scalers", q.part("quantized_scalers"));
    t.put("quantization_factor", q.part("quantization_factor"));
    t.put("scaler_mean", q.part("scaler_mean").reshape(1));
    t.put("nf4", q.part("nf4"));
    t.put("dq", Nf4Ref.dequantize(q));
    ObjectNode p = JSON.createObjectNode();
    p.put("block_size", Nf4Ref.BLOCK_SIZE);
    p.put("scaler_block_size", Nf4Ref.SCALER_BLOCK_SIZE);
    add("nf4_" + d.torchName() + "_256x64", "nf4", p, t);
  }

  private void add(String name, String kind, ObjectNode params, Map<String, Tensor> tensors) throws IOException {
    String file = name + ".safetensors";
    SafetensorsWriter.write(dir.resolve(file), tensors, Map.of());
    ObjectNode c = JSON.createObjectNode();
    c.put("file", file);
    c.put("kind", kind);
    c.setAll(params);
    cases.add(c);
  }
}
