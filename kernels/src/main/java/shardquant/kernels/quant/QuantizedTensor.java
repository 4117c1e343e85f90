package shardquant.kernels.quant;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
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
    if (!config.recipe().dataNames().equals(List.copyOf(parts.keySet()))) {
      throw new IllegalArgumentException(config.recipe().cliName() + " stores " + config.recipe().dataNames()
          + ", got parts " + parts.keySet());
    }
    this.config = config;
    this.shape = shape.clone();
    this.originalDType = originalDType;
    this.parts = Collections.unmodifiableMap(new LinkedHashMap<>(parts));
  }

  /**
   * The host parts of quantizing {@code rows} with {@code c}, zeroed, as the recipe declares them
   * ({@link RecipeKernel#parts}: names, dtypes and shapes): every backend's kernels write their output
   * into these, so a part is typed once, in its recipe.
   */
  public static QuantizedTensor allocate(QuantConfig c, Tensor rows) {
    Map<String, Tensor> parts = new LinkedHashMap<>();
    for (PartSpec p : declared(c, rows.shape(), rows.dtype())) {
      parts.put(p.name(), p.allocate());
    }
    return new QuantizedTensor(c, rows.shape(), rows.dtype(), parts);
  }

  /**
   * The host tensor of quantizing a tensor (or row shard) of {@code shape} and {@code dtype} with
   * {@code c}, from parts computed by name: put in the order the recipe declares them
   * ({@link RecipeKernel#parts}), each checked to have its declared dtype and shape.
   */
  public static QuantizedTensor of(QuantConfig c, long[] shape, DType dtype, Map<String, Tensor> byName) {
    List<PartSpec> specs = declared(c, shape, dtype);
    Map<String, Tensor> parts = new LinkedHashMap<>();
    for (PartSpec p : specs) {
      Tensor t = byName.get(p.name());
      if (t == null || t.dtype() != p.dtype() || !Arrays.equals(t.shape(), p.shape())) {
        throw new IllegalArgumentException(p.name() + " must be " + p.dtype().torchName() + Arrays.toString(p.shape())
            + ", got " + t);
      }
      parts.put(p.name(), t);
    }
    if (byName.size() != specs.size()) {
      throw new IllegalArgumentException(c.recipe().cliName() + " stores " + c.recipe().dataNames() + ", got parts "
          + byName.keySet());
    }
    return new QuantizedTensor(c, shape, dtype, parts);
  }

  /** The recipe's parts for {@code shape}: [rows, cols], or a 1-D tensor as one column. */
  private static List<PartSpec> declared(QuantConfig c, long[] shape, DType dtype) {
    boolean matrix = shape.length == 2;
    return c.recipe().kernel().parts(matrix ? shape[0] : Tensor.numel(shape), matrix ? shape[1] : 1, dtype, c);
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

  /** Same config, shape, original dtype and part bytes. */
  public boolean contentEquals(QuantizedTensor other) {
    if (!config.equals(other.config) || !Arrays.equals(shape, other.shape) || originalDType != other.originalDType) {
      return false;
    }
    for (Map.Entry<String, Tensor> e : parts.entrySet()) {
      if (!e.getValue().contentEquals(other.parts.get(e.getKey()))) {
        return false;
      }
    }
    return true;
  }

  @Override
  public String toString() {
    return config + " " + Arrays.toString(shape);
  }
}
