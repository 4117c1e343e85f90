package shardquant.kernels.backend.cuda;

import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.AffineSpec;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.RecipeKernel;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * int4-tile-packed and int4-cpu (tinygemm asymmetric int4): {@code int4_tile_packed} and {@code int4_cpu}
 * (src/main/cuda/int4_tinygemm.cu), one to four warps per row, one fused pass writing qdata in its packed layout and
 * scale_and_zero in place. Part shapes, and tile-packed's padding of N to 8 and K to 1024, come from the
 * recipe's {@link RecipeKernel#parts}; a shape or dtype the recipe refuses goes to the CPU backend, which
 * refuses it with the reference's message.
 */
final class CudaInt4 implements CudaRecipe {
  private static final int THREADS = 256;
  /** int4_cpu: rows per block of the CPU layout. */
  private static final int ROW_BLOCK = 64;
  /** Dynamic shared memory per thread: 8 columns' verification terms (two doubles each) and codes. */
  private static final int SHARED_PER_THREAD = 8 * (2 * 8 + 1);

  private final Int4Layout layout;

  CudaInt4(Int4Layout layout) {
    this.layout = layout;
  }

  @Override
  public QuantizedTensor quantize(Gpu gpu, Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    RecipeKernel recipe = c.recipe().kernel();
    if (recipe.refusal(rows.rows(), rows.cols(), rows.dtype(), c) != null || rows.rows() == 0 || rows.cols() == 0) {
      return null; // the CPU backend refuses it as the reference does
    }
    int realRows = Math.toIntExact(rows.rows());
    int cols = Math.toIntExact(rows.cols());
    List<PartSpec> specs = recipe.parts(rows.rows(), rows.cols(), rows.dtype(), c);
    PartSpec qSpec = specs.get(0);
    PartSpec szSpec = specs.get(1);
    int n = Math.toIntExact(szSpec.shape()[1]);
    int k = Math.toIntExact(szSpec.shape()[0] * c.groupSize());
    int group = c.groupSize();
    float eps = (float) AffineSpec.defaultEps(DType.BF16);
    CudaDevice dev = gpu.device();
    try (CudaShard shard = gpu.shard(rows)) {
      long qBytes = Tensor.numel(qSpec.shape()) * qSpec.dtype().byteSize();
      long szBytes = Tensor.numel(szSpec.shape()) * szSpec.dtype().byteSize();
      // int4-cpu's qdata is [N, K / 2], row by row; tile-packed's tiles span 8 rows with padding, and
      // scale_and_zero is [K / group, N, 2]: those two are downloaded after the last chunk.
      CudaShard.Output q = layout == Int4Layout.CPU ? shard.rowOutput(qBytes) : shard.output(qBytes);
      CudaShard.Output sz = shard.output(szBytes);
      CudaShard.Output rowStats = shard.rowOutput((long) CudaRowStats.BYTES * realRows);
      CudaShard.Output inputBad = shard.rowOutput(4L * realRows);
      // int4_tinygemm.cu: rowThreads threads (one, two or four warps: 256 columns each) per row,
      // THREADS / rowThreads rows per block.
      int rowThreads = k <= 256 ? 32 : k <= 512 ? 64 : 128;
      int rowsPerBlock = THREADS / rowThreads;
      shard.uploadAndRun(layout.rowAlignment(), (s, r0, r1) -> {
        int end = Math.toIntExact(layout.storedRows(r1)); // tile-packed's last chunk takes the padding rows too
        // Exhaustive: a new layout does not compile until it has a kernel here.
        Object[] args = switch (layout) {
          case TILE_PACKED -> new Object[] {shard.input(), cols, realRows, n, k, group, r0, end, eps, rowThreads, q, sz,
              rowStats, inputBad};
          case CPU -> new Object[] {shard.input(), n, k, group, r0, end, eps, rowThreads, q, sz, rowStats, inputBad};
          case PLAIN -> throw new IllegalStateException("no recipe writes the " + layout.cliName() + " int4 layout");
        };
        String kernel = layout == Int4Layout.TILE_PACKED ? "int4_tile_packed" : "int4_cpu";
        int grid = layout == Int4Layout.TILE_PACKED ? CudaKernels.blocks(end - r0, rowsPerBlock)
            : ROW_BLOCK / rowsPerBlock * CudaKernels.blocks(end - r0, ROW_BLOCK);
        dev.launch(s, kernel, grid, THREADS, THREADS * SHARED_PER_THREAD, args);
      });
      ByteBuffer bad = inputBad.bytes();
      for (int r = 0; r < realRows; r++) {
        if (bad.getInt(4 * r) != 0) {
          return null; // NaN or infinity: the CPU backend refuses it with the reference's message
        }
      }
      // Non-finite dequantized values of finite input (a group spanning ±bf16 max) are the reference's too.
      shard.stats(rowStats).addTo(stats, cols);
      Map<String, Tensor> parts = new LinkedHashMap<>();
      parts.put(qSpec.name(), q.tensor(qSpec.dtype(), qSpec.shape()));
      parts.put(szSpec.name(), sz.tensor(szSpec.dtype(), szSpec.shape()));
      return new QuantizedTensor(c, rows.shape(), rows.dtype(), parts);
    }
  }
}
