package shardquant.kernels.loader;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.QuantConfig;

/**
 * One tensor of a checkpoint under the name the model gives it: the recipe it was quantized with (null
 * when it is stored in high precision), its original shape and dtype, the file holding it, and its
 * stored parts in torchao's {@code _tensor_data_names} order (one part, under the tensor's own name,
 * for a plain tensor).
 *
 * <p>{@code layout} is the tinygemm int4 form of an int4 tensor (tile-packed or cpu, as its recipe says,
 * or the plain form {@code shardquant repack --layout plain} writes, which belongs to no recipe and so
 * has a null {@code config}); null for every other tensor.
 */
public record TensorInfo(String name, QuantConfig config, long[] shape, DType dtype, Path file, List<StoredPart> parts,
    Int4Layout layout) {
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
    if (config != null && layout != Int4Layout.of(config.recipe())) {
      throw new IllegalArgumentException(name + ": recipe " + config + " stores layout " + Int4Layout.of(config.recipe()) + ", not " + layout);
    }
  }

  /** A tensor quantized with {@code config} (null: stored in high precision). */
  public TensorInfo(String name, QuantConfig config, long[] shape, DType dtype, Path file, List<StoredPart> parts) {
    this(name, config, shape, dtype, file, parts, config == null ? null : Int4Layout.of(config.recipe()));
  }

  /** Stored in quantized form: by a recipe, or in the plain int4 form. */
  public boolean quantized() {
    return config != null || layout != null;
  }

  /** Stored in the plain int4 form, which no recipe reads (repack it to tile-packed or cpu first). */
  public boolean plainInt4() {
    return layout == Int4Layout.PLAIN;
  }

  /** The group size of an int4 tensor: its recipe's, or for the plain form K over the columns of {@code scale}. */
  public int int4GroupSize() {
    if (layout == null) {
      throw new IllegalStateException(file + ": tensor '" + name + "' is not tinygemm int4");
    }
    return config != null ? config.groupSize() : Math.toIntExact(shape[1] / parts.get(1).shape()[1]);
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
    return config != null ? config.recipe().cliName() : plainInt4() ? "int4-plain-layout" : "plain";
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof TensorInfo t && name.equals(t.name) && java.util.Objects.equals(config, t.config)
        && Arrays.equals(shape, t.shape) && dtype == t.dtype && file.equals(t.file) && parts.equals(t.parts)
        && layout == t.layout;
  }

  @Override
  public int hashCode() {
    return name.hashCode() * 31 + Arrays.hashCode(shape);
  }

  @Override
  public String toString() {
    return name + " " + dtype.safetensorsName() + Arrays.toString(shape) + " " + (config != null ? config : plainInt4() ? "int4 plain layout" : "plain")
        + " in " + file.getFileName() + " " + parts;
  }
}
