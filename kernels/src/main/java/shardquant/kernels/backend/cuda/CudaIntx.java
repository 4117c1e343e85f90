package shardquant.kernels.backend.cuda;

import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.AffineSpec;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.MappingType;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * 8da4w and intx-weight-only: {@code intx_groupwise} (src/main/cuda/intx_groupwise.cu), one block per
 * row, the recipe's symmetric groups of {@code --group-size} with {@code --bits}-bit codes (the
 * reference's IntxRecipe.spec). The kernel also takes the other mappings of AffineQuantRef for the same
 * spec shape ({@link #affine}), which no recipe asks for yet.
 */
final class CudaIntx implements CudaRecipe {
  /** Codes, scales, zero points ([R, K / g] each but codes [R, K]) of {@link #affine}. */
  record Parts(Tensor qdata, Tensor scale, Tensor zeroPoint) {}

  @Override
  public QuantizedTensor quantize(Gpu gpu, Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    if (c.recipe().kernel().refusal(rows.rows(), rows.cols(), rows.dtype(), c) != null || rows.rows() == 0) {
      return null; // the CPU backend refuses it (or quantizes an empty shard) with the reference's words
    }
    int half = 1 << (c.bits() - 1);
    Parts p = affine(gpu, rows, MappingType.SYMMETRIC, c.groupSize(), -half, half - 1, stats);
    if (p == null) {
      return null;
    }
    return QuantizedTensor.of(c, rows.shape(), rows.dtype(),
        Map.of("qdata", p.qdata(), "scale", p.scale(), "zero_point", p.zeroPoint()));
  }

  /**
   * AffineQuantRef's choose_qparams_affine / quantize_affine for {@code mapping}, block (1, {@code group})
   * ({@code group} dividing the row; the whole row for per-row), int8 codes {@code quantMin..quantMax},
   * the default eps, scale in the input's dtype, int8 zero point, INT domain; its verification sums
   * (one block per row, as QuantStats.addRows) into {@code stats}. Null, leaving {@code stats} alone,
   * when a row holds NaN or infinity or a dequantized value overflows (the CPU decides then).
   */
  static Parts affine(Gpu gpu, Tensor rows, MappingType mapping, int group, int quantMin, int quantMax, QuantStats stats) {
    int n = Math.toIntExact(rows.rows());
    int k = Math.toIntExact(rows.cols());
    if (group < 1 || k % group != 0 || quantMin < -128 || quantMax > 127 || quantMin > quantMax) {
      throw new IllegalArgumentException("groups of " + group + " over rows of " + k + " with int8 codes "
          + quantMin + ".." + quantMax);
    }
    DType d = rows.dtype();
    int groups = k / group;
    CudaDevice dev = gpu.device();
    try (CudaShard shard = gpu.shard(rows)) {
      CudaShard.Output q = shard.rowOutput((long) n * k);
      CudaShard.Output scale = shard.rowOutput((long) n * groups * d.byteSize());
      CudaShard.Output zero = shard.rowOutput((long) n * groups);
      CudaShard.Output rowStats = shard.rowOutput((long) CudaRowStats.BYTES * n);
      // The Python scalars torchao writes, as AffineQuantRef.chooseQParams converts them.
      float halfRange = (float) (((double) quantMax - quantMin) / 2);
      float range = (float) ((double) quantMax - quantMin);
      int symmetricZero = (int) ((quantMax + (double) quantMin + 1) / 2); // Python int() truncates
      float eps = (float) AffineSpec.defaultEps(d);
      int dtype = CudaKernels.dtype(d);
      int map = switch (mapping) { // INTX_* of the kernel
        case SYMMETRIC -> 0;
        case SYMMETRIC_NO_CLIPPING_ERR -> 1;
        case ASYMMETRIC -> 2;
      };
      // Dynamic shared memory: the term tiles, a pass's qparams (P = max(1, 512 / group) groups, 12 bytes
      // each), then the row when it fits (intx_groupwise.cu).
      int passBytes = (CudaInt8.TERM_TILE_BYTES + 12 * Math.max(1, 512 / group) + 15) / 16 * 16;
      int rowBytes = CudaInt8.rowCacheBytes(k, d.byteSize());
      int cache = passBytes + rowBytes <= CudaInt8.SHARED_LIMIT ? 1 : 0;
      shard.uploadAndRun(1, (s, r0, r1) -> dev.launch(s, "intx_groupwise", CudaKernels.blocks(r1 - r0, 1),
          CudaInt8.threads(k), passBytes + cache * rowBytes, shard.input(), dtype, k, group, r0, r1, map, quantMin,
          quantMax, halfRange, range, symmetricZero, eps, cache, q, scale, zero, rowStats));
      CudaRowStats sums = shard.stats(rowStats);
      if (sums.anyNonFinite()) {
        return null;
      }
      sums.addTo(stats, k);
      return new Parts(q.tensor(DType.I8, n, k), scale.tensor(d, n, groups), zero.tensor(DType.I8, n, groups));
    }
  }
}
