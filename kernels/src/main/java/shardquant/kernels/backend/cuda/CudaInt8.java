package shardquant.kernels.backend.cuda;

import java.util.Map;
import shardquant.kernels.quant.AffineSpec;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** int8-weight-only and int8-dynamic: {@code int8_rowwise} (src/main/cuda/int8_rowwise.cu), one block per row. */
final class CudaInt8 implements CudaRecipe {
  /** SQ_TERM_TILE_BYTES of sq_common.cuh: the verification terms' tiles, first in dynamic shared memory. */
  static final int TERM_TILE_BYTES = 4 * 512 * 8;
  /**
   * Dynamic shared memory a block may take: 48 KiB (without opting in, cuFuncSetAttribute) less 1 KiB for
   * the kernels' static shared memory (512 bytes at most, ptxas -v).
   */
  static final int SHARED_LIMIT = 47 << 10;

  /** Threads of a row's block (int8_rowwise, intx_groupwise): about 16 elements a thread, 32 to 256. */
  static int threads(long cols) {
    return (int) Math.min(256, 32 * Math.max(1, (cols + 511) / 512));
  }

  /** Bytes of a cached row in shared memory (16-byte multiple). */
  static int rowCacheBytes(long cols, int dtypeBytes) {
    return Math.toIntExact((cols * dtypeBytes + 15) / 16 * 16);
  }

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
      int cache = TERM_TILE_BYTES + rowCacheBytes(k, rows.dtype().byteSize()) <= SHARED_LIMIT ? 1 : 0;
      shard.uploadAndRun(1, (s, r0, r1) -> dev.launch(s, "int8_rowwise", CudaKernels.blocks(r1 - r0, 1), threads(k),
          TERM_TILE_BYTES + cache * rowCacheBytes(k, rows.dtype().byteSize()), shard.input(), dtype, k, r0, r1, eps, cache,
          q, scale, rowStats));
      CudaRowStats sums = shard.stats(rowStats);
      if (sums.anyNonFinite()) {
        return null;
      }
      sums.addTo(stats, k);
      return CudaRecipe.download(shard, c, rows, declared, Map.of("qdata", q, "scale", scale)); // zero_point 0: symmetric
    }
  }
}
