package shardquant.kernels.backend.cuda;

import shardquant.kernels.tensor.Tensor;

/** What a {@link CudaRecipe} runs on: a device, and the chunk size its shard uploads use. */
record Gpu(CudaDevice device, long chunkBytes) {
  /** A shard of {@code rows} on this device (close it). */
  CudaShard shard(Tensor rows) {
    return new CudaShard(device, rows, chunkBytes);
  }
}
