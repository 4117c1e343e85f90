package shardquant.kernels.backend.simd;

import java.util.LinkedHashMap;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@code int8-weight-only} and {@code int8-dynamic} (the reference: Int8Recipe, torchao's
 * Int8Tensor.from_hp): symmetric per row, codes -128..127. Parts, in torchao's order: zero_point int8
 * [R, 1] (all 0: symmetric), qdata int8 [R, K], scale float32 [R, 1] (computed in the weight's dtype).
 */
final class SimdInt8 implements SimdKernel {
  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    int cols = Math.toIntExact(rows.cols());
    SimdSymmetricAffine kernel = new SimdSymmetricAffine(rows.dtype(), cols, 8, DType.F32);
    long[] perRow = {rows.rows(), 1};
    Tensor qdata = Tensor.allocate(DType.I8, rows.shape());
    Tensor scale = Tensor.allocate(DType.F32, perRow);
    kernel.quantize(rows, qdata, scale, stats);
    Map<String, Tensor> parts = new LinkedHashMap<>();
    parts.put("zero_point", Tensor.allocate(DType.I8, perRow));
    parts.put("qdata", qdata);
    parts.put("scale", scale);
    return new QuantizedTensor(c, rows.shape(), rows.dtype(), parts);
  }
}
