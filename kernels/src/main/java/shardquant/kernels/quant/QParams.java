package shardquant.kernels.quant;

import shardquant.kernels.tensor.Tensor;

/**
 * A tensor's scale and zero point per block, shaped as torchao returns them
 * ({@link BlockSize#qparamShape}); {@code zeroPoint} is null in the NONE domain.
 */
public record QParams(Tensor scale, Tensor zeroPoint) {
  public QParams {
    if (scale == null) {
      throw new IllegalArgumentException("scale is required");
    }
    if (zeroPoint != null && zeroPoint.numel() != scale.numel()) {
      throw new IllegalArgumentException("scale " + scale + " and zero point " + zeroPoint + " differ in size");
    }
  }
}
