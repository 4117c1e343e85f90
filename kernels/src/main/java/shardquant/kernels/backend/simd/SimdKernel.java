package shardquant.kernels.backend.simd;

import shardquant.kernels.backend.reference.ReferenceBackend;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** One recipe's fused single-pass kernel on the Vector API: read, qparams, codes, packing, stats. */
interface SimdKernel {
  QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats);

  /** The recipe's first-pass partial ({@link shardquant.kernels.backend.Backend#firstPass}); the reference's unless overridden. */
  default float[] firstPass(QuantConfig c, Tensor rows) {
    return ReferenceBackend.INSTANCE.firstPass(c, rows);
  }
}
