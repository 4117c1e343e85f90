package shardquant.kernels.loader;

import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;

/**
 * One tensor of {@link Checkpoint#stream()}: its description and its memory-mapped parts, either a
 * quantized tensor or a plain one. The views stay valid after the stream has closed the file.
 */
public final class LoadedTensor {
  private final TensorInfo info;
  private final QuantizedTensor quantized;
  private final Tensor plain;

  LoadedTensor(TensorInfo info, QuantizedTensor quantized, Tensor plain) {
    this.info = info;
    this.quantized = quantized;
    this.plain = plain;
  }

  public TensorInfo info() {
    return info;
  }

  public String name() {
    return info.name();
  }

  public boolean isQuantized() {
    return quantized != null;
  }

  public QuantizedTensor quantized() {
    if (quantized == null) {
      throw new IllegalStateException(info.file() + ": tensor '" + info.name() + "' is stored in high precision; use plain()");
    }
    return quantized;
  }

  public Tensor plain() {
    if (plain == null) {
      throw new IllegalStateException(info.file() + ": tensor '" + info.name() + "' is quantized (" + info.config()
          + "); use quantized() or dequantize(dtype)");
    }
    return plain;
  }

  /** The values in {@code out}: dequantized if quantized, converted if plain. */
  public Tensor dequantize(DType out) {
    return quantized != null ? quantized.dequantize(out) : Checkpoint.convert(info, plain, out);
  }
}
