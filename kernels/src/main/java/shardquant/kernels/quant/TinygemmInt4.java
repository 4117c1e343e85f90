package shardquant.kernels.quant;

import shardquant.kernels.dtype.DType;
import shardquant.kernels.layout.TinygemmScaleZero;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** The tinygemm int4 quantization both int4 recipes share, before packing. */
final class TinygemmInt4 {
  /** Plain codes [n][k] (0..15) and bf16 scale and zero [n][k/g]. */
  record Codes(int[] codes, Tensor scale, Tensor zero) {}

  private TinygemmInt4() {}

  static String refusal(DType dtype, QuantConfig c) {
    if (dtype != DType.BF16) {
      return c.recipe().cliName() + " needs bfloat16 weights (tinygemm stores bf16 scales and zeros), got "
          + dtype.torchName() + "; convert the checkpoint to bf16 or use 8da4w";
    }
    return null;
  }

  /** Quantizes {@code padded}; verification covers its top-left {@code rows x cols}, the real weight. */
  static Codes quantize(Tensor padded, long rows, long cols, QuantConfig c, QuantStats stats) {
    AffineSpec spec = AffineSpec.tinygemmInt4(c.groupSize(), padded.dtype());
    QParams qp = AffineQuantRef.chooseGroupwiseQParams(padded, spec);
    long[] clipped = new long[Math.toIntExact(padded.rows())];
    Tensor q = AffineQuantRef.quantize(padded, spec, qp, clipped);
    stats.addRows(padded, AffineQuantRef.dequantize(q, spec, qp, padded.dtype()), clipped, rows, cols);
    return new Codes(q.toInts(), qp.scale(), qp.zeroPoint());
  }

  /** Dequantizes plain codes [n][k] with a packed scale_and_zero, cropped to the original {@code shape}. */
  static Tensor dequantize(int[] codes, int n, int k, Tensor scaleAndZero, long[] shape, QuantConfig c, DType out) {
    AffineSpec spec = AffineSpec.tinygemmInt4(c.groupSize(), DType.BF16);
    QParams qp = new QParams(TinygemmScaleZero.scale(scaleAndZero), TinygemmScaleZero.zero(scaleAndZero));
    Tensor dq = AffineQuantRef.dequantize(Tensor.fromInts(DType.I32, new long[] {n, k}, codes), spec, qp, out);
    return dq.resized(shape[0], shape[1]);
  }
}
