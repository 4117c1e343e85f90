package shardquant.kernels.golden;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Set;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.layout.CpuInt4Layout;
import shardquant.kernels.layout.TensorCoreTiledInt4Layout;
import shardquant.kernels.layout.TinygemmScaleZero;
import shardquant.kernels.quant.AffineQuantRef;
import shardquant.kernels.quant.AffineSpec;
import shardquant.kernels.quant.QParams;
import shardquant.kernels.tensor.Tensor;

/**
 * Golden kind {@code tinygemm_int4}: tinygemm's qparams, codes and dequantization of {@code w}, its
 * {@code scale_and_zero}, and the packed layouts (tensor-core tiled for each inner_k_tiles present,
 * CPU where present), each packed from shardquant's own codes and unpacked back to them. The
 * {@code y_*} matmul outputs are PyTorch's kernels' arithmetic, not shardquant's.
 */
public final class TinygemmInt4Kind implements GoldenKind {
  private static final int[] INNER_K_TILES = {2, 4, 8};

  @Override
  public String kind() {
    return "tinygemm_int4";
  }

  @Override
  public Set<String> notChecked() {
    return Set.of("y_tc_ikt2", "y_tc_ikt4", "y_tc_ikt8", "y_cpu");
  }

  @Override
  public void check(GoldenCase c, GoldenReport r) throws IOException {
    Tensor w = c.tensor("w");
    int n = Math.toIntExact(w.rows());
    int k = Math.toIntExact(w.cols());
    AffineSpec spec = AffineSpec.tinygemmInt4(c.intParam("group_size"), w.dtype());
    // [N, K/g] as torchao packs them, [N, 1] for rows of one group (K = g)
    QParams qp = AffineQuantRef.chooseGroupwiseQParams(w, spec);
    Tensor q = AffineQuantRef.quantize(w, spec, qp);
    r.exact("scale", qp.scale());
    r.exact("zero", qp.zeroPoint());
    r.exact("q", q);
    r.exact("dq", AffineQuantRef.dequantize(q, spec, qp, w.dtype()));
    Tensor scaleAndZero = TinygemmScaleZero.pack(qp.scale(), qp.zeroPoint());
    r.exact("scale_and_zero", scaleAndZero);
    if (!TinygemmScaleZero.scale(scaleAndZero).contentEquals(qp.scale())
        || !TinygemmScaleZero.zero(scaleAndZero).contentEquals(qp.zeroPoint())) {
      r.fail("scale_and_zero: unpacking does not give back scale and zero");
    }
    int[] codes = q.toInts();
    for (int ikt : INNER_K_TILES) {
      String name = "packed_tc_ikt" + ikt;
      if (c.has(name)) {
        int[] words = TensorCoreTiledInt4Layout.pack(codes, n, k, ikt);
        r.exact(name, Tensor.fromInts(DType.I32, TensorCoreTiledInt4Layout.packedShape(n, k, ikt), words));
        checkRoundTrip(r, name, codes, TensorCoreTiledInt4Layout.unpack(words, n, k, ikt));
      }
    }
    if (c.has("packed_cpu")) {
      byte[] packed = CpuInt4Layout.pack(codes, n, k);
      r.exact("packed_cpu", Tensor.of(DType.U8, new long[] {n, k / 2}, ByteBuffer.wrap(packed)));
      checkRoundTrip(r, "packed_cpu", codes, CpuInt4Layout.unpack(packed, n, k));
    }
  }

  private static void checkRoundTrip(GoldenReport r, String layout, int[] codes, int[] unpacked) {
    if (!Arrays.equals(codes, unpacked)) {
      r.fail(layout + ": unpacking does not give back the codes");
    }
  }
}
