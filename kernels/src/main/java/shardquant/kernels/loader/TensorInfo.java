package shardquant.kernels.loader;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.QuantConfig;

/**
 * One tensor of a checkpoint under the name the model gives it: the recipe it was quantized with (null
 * when it is stored in high precision), its original shape and dtype, the file holding it, and its
 * stored parts in torchao's {@code _tensor_data_names} order (one part, under the tensor's own name,
 * for a plain tensor).
 */
public record TensorInfo(String name, QuantConfig config, long[] shape, DType dtype, Path file, List<StoredPart> parts) {
  /** One stored safetensors tensor: torchao's data name ({@code qdata}; null for a plain tensor), key, dtype, shape. */
  public record StoredPart(String dataName, String key, DType dtype, long[] shape) {
    public StoredPart {
      shape = shape.clone();
    }

    @Override
    public long[] shape() {
      return shape.clone();
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof StoredPart p && java.util.Objects.equals(dataName, p.dataName) && key.equals(p.key)
          && dtype == p.dtype && Arrays.equals(shape, p.shape);
    }

    @Override
    public int hashCode() {
      return key.hashCode() * 31 + Arrays.hashCode(shape);
    }

    @Override
    public String toString() {
      return key + " " + dtype.safetensorsName() + Arrays.toString(shape);
    }
  }

  public TensorInfo {
    shape = shape.clone();
    parts = List.copyOf(parts);
  }

  public boolean quantized() {
    return config != null;
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  /** The first dimension: what row ranges index. */
  public long rows() {
    if (shape.length == 0) {
      throw new IllegalArgumentException(file + ": tensor '" + name + "' is a scalar and has no rows");
    }
    return shape[0];
  }

  /** The recipe's {@code --recipe} name, or {@code "plain"} for a tensor stored in high precision. */
  public String recipeName() {
    return quantized() ? config.recipe().cliName() : "plain";
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof TensorInfo t && name.equals(t.name) && java.util.Objects.equals(config, t.config)
        && Arrays.equals(shape, t.shape) && dtype == t.dtype && file.equals(t.file) && parts.equals(t.parts);
  }

  @Override
  public int hashCode() {
    return name.hashCode() * 31 + Arrays.hashCode(shape);
  }

  @Override
  public String toString() {
    return name + " " + dtype.safetensorsName() + Arrays.toString(shape) + " " + (quantized() ? config : "plain")
        + " in " + file.getFileName() + " " + parts;
  }
}
