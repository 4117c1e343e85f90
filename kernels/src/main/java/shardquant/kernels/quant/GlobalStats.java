package shardquant.kernels.quant;

import java.io.Serializable;

/**
 * Tensor-wide statistics a recipe needs before it can quantize any row shard: what its
 * {@link FirstPass} combines on the driver. Only NF4 has one, the mean of its block scalers.
 */
public record GlobalStats(float scalerMean) implements Serializable {
  /** For recipes with no tensor-wide statistic. */
  public static final GlobalStats NONE = new GlobalStats(Float.NaN);
}
