package shardquant.kernels.backend.cuda;

import java.util.Map;
import shardquant.kernels.quant.AffineSpec;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** int8-weight-only and int8-dynamic: {@code int8_rowwise} (src/main/cuda/int8_rowwise.cu), one warp per row. */
final class CudaInt8 implements CudaRecipe {
  private static final int THREADS = 256;
  private static final int ROWS_PER_BLOCK = THREADS / 32;

  @Override
  public QuantizedTensor quantize(Gpu gpu, Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    int n = Math.toIntExact(rows.rows());
    int k = Math.toIntExact(rows.cols());
    CudaDevice dev = gpu.device();
    Map<String, PartSpec> declared = CudaRecipe.declared(c, rows);
    try (CudaShard shard = gpu.shard(rows)) {
      CudaShard.Output q = CudaRecipe.rowOutput(shard, declared, "qdata");
      CudaShard.Output scale = CudaRecipe.rowOutput(shard, declared, "scale");
      CudaShard.Output rowStats = shard.rowOutput((long) CudaRowStats.BYTES * n);
      float eps = (float) AffineSpec.defaultEps(rows.dtype());
      int dtype = CudaKernels.dtype(rows.dtype());
      shard.uploadAndRun(1, (s, r0, r1) -> dev.launch(s, "int8_rowwise", CudaKernels.blocks(r1 - r0, ROWS_PER_BLOCK),
          THREADS, 0, shard.input(), dtype, k, r0, r1, eps, q, scale, rowStats));
      CudaRowStats sums = shard.stats(rowStats);
      if (sums.anyNonFinite()) {
        return null;
      }
      sums.addTo(stats, k);
      return CudaRecipe.download(shard, c, rows, declared, Map.of("qdata", q, "scale", scale)); // zero_point 0: symmetric
    }
  }
}
