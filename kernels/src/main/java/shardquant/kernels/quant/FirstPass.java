package shardquant.kernels.quant;

import java.util.List;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * A tensor-global first pass that a recipe may declare ({@link RecipeKernel#firstPass}): some statistic
 * of the whole tensor that every row shard's quantization needs. A distributed job runs it in two
 * steps: each executor computes a shard's {@link #partial} (a backend may compute it faster, giving the
 * same floats), and the driver {@link #combine}s all of a tensor's partials, in row order, into the
 * {@link GlobalStats} the second pass quantizes every shard with.
 */
public interface FirstPass {
  /** The reference partial of one row shard: floats the driver needs from it, small next to the shard. */
  float[] partial(Tensor rows);

  /**
   * The tensor's statistics from every shard's {@link #partial}, in row order, for a tensor of
   * {@code dtype}; an IllegalArgumentException says why a tensor cannot take the recipe.
   */
  GlobalStats combine(DType dtype, List<float[]> partialsInRowOrder);
}
