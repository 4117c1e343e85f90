package shardquant.kernels.quant;

/** Where the zero point lives, as torchao's {@code ZeroPointDomain} (torchao/quantization/quant_primitives.py). */
public enum ZeroPointDomain {
  /** q = clamp(round(x / scale) + zero_point); x = (q - zero_point) * scale. */
  INT,
  /**
   * tinygemm's float zero point: q = clamp(round((x - (zero - scale * mid)) / scale)),
   * x = (q - mid) * scale + zero, with mid = (quant_max + quant_min + 1) / 2.
   */
  FLOAT,
  /** No zero point: q = clamp(round(x / scale)); x = q * scale. */
  NONE
}
