package shardquant.kernels.backend.simd;

import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@code 8da4w} and {@code intx-weight-only} (the reference: IntxRecipe, torchao's
 * IntxUnpackedToInt8Tensor.from_hp): symmetric groups of {@code --group-size} with {@code --bits}-bit
 * codes, one per byte. Writes qdata and scale into the parts IntxRecipe declares; zero_point stays 0.
 */
final class SimdIntx implements SimdKernel {
  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    DType d = rows.dtype();
    SimdSymmetricAffine kernel = new SimdSymmetricAffine(d, c.groupSize(), c.bits(), d);
    QuantizedTensor out = QuantizedTensor.allocate(c, rows);
    kernel.quantize(rows, out.part("qdata"), out.part("scale"), stats);
    return out;
  }
}
