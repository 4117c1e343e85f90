package shardquant.arrow;

import shardquant.kernels.tensor.Tensor;

/**
 * One stored piece of a quantized (or copied) shard: the stored key (e.g. "a.b._weight_qdata" or, for
 * a copied tensor, its own name), which dimension of the full stored tensor grows with the original
 * rows (-1 = replicated/whole in every shard), and the piece's bytes as a Tensor with its dtype and
 * the piece's shape.
 */
public record ShardPart(String key, int rowDim, Tensor data) {

  public ShardPart {
    if (key == null || key.isEmpty()) {
      throw new IllegalArgumentException("shard part needs a stored key, got '" + key + "'");
    }
    if (data == null) {
      throw new IllegalArgumentException("shard part '" + key + "' needs data");
    }
    if (rowDim < -1 || rowDim >= data.rank()) {
      throw new IllegalArgumentException("shard part '" + key + "' of shape " + data + " has rowDim " + rowDim
          + "; expected -1 (replicated) or a dimension in [0, " + data.rank() + ")");
    }
  }
}
