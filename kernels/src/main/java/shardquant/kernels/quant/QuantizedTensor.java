package shardquant.kernels.quant;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * A quantized tensor (or a row shard of one): every stored part (codes, scales, zeros, tables) in
 * torchao's {@code _tensor_data_names} order, the original shape and dtype, and the recipe, in host
 * memory. It moves to a GPU as a unit (the CUDA backend's {@code toDevice}, which never dequantizes), and
 * {@link #dequantize(DType)} is the one explicit way back to floats.
 */
public final class QuantizedTensor {
  private final QuantConfig config;
  private final long[] shape;
  private final DType originalDType;
  private final Map<String, Tensor> parts;

  public QuantizedTensor(QuantConfig config, long[] shape, DType originalDType, Map<String, Tensor> parts) {
    if (!config.recipe().dataNames().equals(java.util.List.copyOf(parts.keySet()))) {
      throw new IllegalArgumentException(config.recipe().cliName() + " stores " + config.recipe().dataNames()
          + ", got parts " + parts.keySet());
    }
    this.config = config;
    this.shape = shape.clone();
    this.originalDType = originalDType;
    this.parts = Collections.unmodifiableMap(new LinkedHashMap<>(parts));
  }

  public QuantConfig config() {
    return config;
  }

  /** The shape of the original (unpadded) high-precision tensor or row shard. */
  public long[] shape() {
    return shape.clone();
  }

  public DType originalDType() {
    return originalDType;
  }

  public Map<String, Tensor> parts() {
    return parts;
  }

  public Tensor part(String name) {
    Tensor t = parts.get(name);
    if (t == null) {
      throw new IllegalArgumentException(config.recipe().cliName() + " has no part '" + name + "'; it has " + parts.keySet());
    }
    return t;
  }

  /** The dequantized values as torchao computes them, in {@code out} dtype. */
  public Tensor dequantize(DType out) {
    return config.recipe().kernel().dequantize(this, out);
  }

  @Override
  public String toString() {
    return config + " " + Arrays.toString(shape);
  }
}
