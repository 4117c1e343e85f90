package shardquant.kernels.quant;

import java.util.Arrays;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * One stored part of a quantized tensor: its torchao data name, dtype and shape, and which of its
 * dimensions grows with the original tensor's rows. A row shard's part is that slice along
 * {@code rowDim} of the whole tensor's part, so an assembler concatenates shards' parts along it;
 * {@code rowDim == -1} marks a part every shard holds whole (NF4's lookup table and scaler mean).
 */
public record PartSpec(String name, DType dtype, long[] shape, int rowDim) {
  public static final int REPLICATED = -1;

  public PartSpec {
    shape = shape.clone();
    if (rowDim < REPLICATED || rowDim >= shape.length) {
      throw new IllegalArgumentException("part " + name + ": row dimension " + rowDim + " outside shape " + Arrays.toString(shape));
    }
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  public long byteSize() {
    return Tensor.numel(shape) * dtype.byteSize();
  }

  /** A zeroed host tensor of this part's dtype and shape, for a kernel to write. */
  public Tensor allocate() {
    return Tensor.allocate(dtype, shape);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof PartSpec p && name.equals(p.name) && dtype == p.dtype && Arrays.equals(shape, p.shape)
        && rowDim == p.rowDim;
  }

  @Override
  public int hashCode() {
    return name.hashCode() * 31 + Arrays.hashCode(shape);
  }

  @Override
  public String toString() {
    return name + " " + dtype.torchName() + Arrays.toString(shape);
  }
}
