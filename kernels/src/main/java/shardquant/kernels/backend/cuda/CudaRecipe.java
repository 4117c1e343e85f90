package shardquant.kernels.backend.cuda;

import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** One recipe family's host code on the GPU: uploads a shard, launches its kernels, downloads its parts. */
interface CudaRecipe {
  /**
   * The shard's parts, byte for byte the reference's, with its verification sums added to {@code stats};
   * or null, leaving {@code stats} alone, when the shard must run on the CPU backend instead (it holds
   * NaN or infinity, which the CPU backend refuses with the reference's message).
   */
  QuantizedTensor quantize(Gpu gpu, Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats);
}
