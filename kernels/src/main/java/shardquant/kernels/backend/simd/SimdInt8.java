package shardquant.kernels.backend.simd;

import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@code int8-weight-only} and {@code int8-dynamic} (the reference: Int8Recipe, torchao's
 * Int8Tensor.from_hp): symmetric per row, codes -128..127, the scale computed in the weight's dtype.
 * Writes qdata and scale into the parts Int8Recipe declares; zero_point stays 0.
 */
final class SimdInt8 implements SimdKernel {
  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    int cols = Math.toIntExact(rows.cols());
    SimdSymmetricAffine kernel = new SimdSymmetricAffine(rows.dtype(), cols, 8, DType.F32);
    QuantizedTensor out = QuantizedTensor.allocate(c, rows);
    kernel.quantize(rows, out.part("qdata"), out.part("scale"), stats);
    return out;
  }
}
