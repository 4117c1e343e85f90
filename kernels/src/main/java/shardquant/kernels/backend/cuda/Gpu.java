package shardquant.kernels.backend.cuda;

import shardquant.kernels.tensor.Tensor;

/**
 * What a {@link CudaRecipe} runs on: a device, the chunk size its shard uploads use, and the input
 * shards kept on it between a job's stages ({@link ResidentInputs}).
 */
record Gpu(CudaDevice device, long chunkBytes, ResidentInputs resident) {
  /** Keeping no input shards. */
  Gpu(CudaDevice device, long chunkBytes) {
    this(device, chunkBytes, ResidentInputs.NONE);
  }

  /** A shard of {@code rows} on this device (close it): on the input kept for it where there is one, else uploaded. */
  CudaShard shard(Tensor rows) {
    return new CudaShard(device, rows, chunkBytes, resident.take(rows));
  }
}
