package shardquant.kernels.backend;

import java.util.List;
import shardquant.kernels.quant.FirstPass;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.repack.TinygemmInt4Tensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * Where a row shard is quantized: the scalar reference, the CPU SIMD kernels, CUDA. Every backend
 * gives the reference's bytes and the reference's {@link QuantStats}, exactly; tests hold each against
 * the reference.
 */
public interface Backend {
  /** {@code reference}, {@code cpu-simd}, ... */
  String name();

  /** The backend that really runs {@code recipe}: this one, or the reference where this one has no kernel for it. */
  String nameFor(Recipe recipe);

  /** As {@link shardquant.kernels.quant.RecipeKernel#quantize}: the shard's parts, and its verification sums added to {@code stats}. */
  QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats);

  /**
   * The shard's partial of its recipe's first pass: {@link FirstPass#partial}'s floats, exactly. Only
   * for a recipe that has one ({@link Recipe#firstPass}); for others an IllegalArgumentException.
   */
  float[] firstPass(QuantConfig c, Tensor rows);

  /**
   * The statistics a tensor's shards are quantized with, from all its row shards (at least one, in
   * row order) held here at once: its recipe's first pass on this backend, combined; {@link GlobalStats#NONE}
   * for a recipe without one. For benches and tests; the job runs the partials on executors and
   * combines them on the driver.
   */
  default GlobalStats globalStats(QuantConfig c, List<Tensor> shardsInRowOrder) {
    return c.recipe().firstPass()
        .map(p -> p.combine(shardsInRowOrder.get(0).dtype(), shardsInRowOrder.stream().map(s -> firstPass(c, s)).toList()))
        .orElse(GlobalStats.NONE);
  }

  /**
   * {@code t} in {@code target}'s int4 layout, bit-exact ({@link TinygemmInt4Tensor#repack}): on the host by
   * default; a backend with its own device converts there, giving the same bytes and refusals.
   */
  default TinygemmInt4Tensor repack(TinygemmInt4Tensor t, Int4Layout target) {
    return t.repack(target);
  }
}
