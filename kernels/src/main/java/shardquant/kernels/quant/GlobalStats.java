package shardquant.kernels.quant;

import java.io.Serializable;

/**
 * Tensor-wide statistics a recipe needs before it can quantize any row shard. Only NF4 has one: the
 * mean of its block scalers (computed by a first pass over all shards).
 */
public record GlobalStats(float scalerMean) implements Serializable {
  /** For recipes with no tensor-wide statistic. */
  public static final GlobalStats NONE = new GlobalStats(Float.NaN);
}
