package shardquant.kernels.backend;

import shardquant.kernels.layout.Int4Layout;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.repack.TinygemmInt4Tensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * Where a row shard is quantized: the scalar reference, the CPU SIMD kernels, (later) CUDA. Every
 * backend gives the reference's bytes and the reference's {@link QuantStats}, exactly; tests hold each
 * against the reference.
 */
public interface Backend {
  /** {@code reference}, {@code cpu-simd}, ... */
  String name();

  /** The backend that really runs {@code recipe}: this one, or the reference where this one has no kernel for it. */
  String nameFor(Recipe recipe);

  /** As {@link shardquant.kernels.quant.RecipeKernel#quantize}: the shard's parts, and its verification sums added to {@code stats}. */
  QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats);

  /** NF4's first pass over a shard: {@link shardquant.kernels.quant.Nf4Ref#blockAbsmax}. */
  float[] nf4BlockAbsmax(Tensor rows);

  /**
   * {@code t} in {@code target}'s int4 layout, bit-exact ({@link TinygemmInt4Tensor#repack}): on the host by
   * default; a backend with its own device converts there, giving the same bytes and refusals.
   */
  default TinygemmInt4Tensor repack(TinygemmInt4Tensor t, Int4Layout target) {
    return t.repack(target);
  }
}
