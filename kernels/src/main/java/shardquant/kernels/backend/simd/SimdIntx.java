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
 * {@code 8da4w} and {@code intx-weight-only} (the reference: IntxRecipe, torchao's
 * IntxUnpackedToInt8Tensor.from_hp): symmetric groups of {@code --group-size} with {@code --bits}-bit
 * codes. Parts, in torchao's order: qdata int8 [R, K] (one code per byte, unpacked), scale [R, K / g]
 * in the weight's dtype, zero_point int8 [R, K / g] (all 0: symmetric).
 */
final class SimdIntx implements SimdKernel {
  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    DType d = rows.dtype();
    SimdSymmetricAffine kernel = new SimdSymmetricAffine(d, c.groupSize(), c.bits(), d);
    long[] groups = {rows.rows(), rows.cols() / c.groupSize()};
    Tensor qdata = Tensor.allocate(DType.I8, rows.shape());
    Tensor scale = Tensor.allocate(d, groups);
    kernel.quantize(rows, qdata, scale, stats);
    Map<String, Tensor> parts = new LinkedHashMap<>();
    parts.put("qdata", qdata);
    parts.put("scale", scale);
    parts.put("zero_point", Tensor.allocate(DType.I8, groups));
    return new QuantizedTensor(c, rows.shape(), d, parts);
  }
}
