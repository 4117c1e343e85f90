package shardquant.kernels.quant;

/**
 * How a block's float range maps onto the integer range, as torchao's {@code MappingType}
 * (torchao/quantization/quant_primitives.py).
 */
public enum MappingType {
  /** scale = max(-min, max) / ((quant_max - quant_min) / 2); zero point in the middle of the range. */
  SYMMETRIC,
  /** scale = larger of min / quant_min and max / quant_max, so neither end clips. */
  SYMMETRIC_NO_CLIPPING_ERR,
  /** scale = (max - min) / (quant_max - quant_min); zero point moves the range onto the codes. */
  ASYMMETRIC
}
