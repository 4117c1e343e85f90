package shardquant.kernels.safetensors;

import java.util.Arrays;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/** One tensor of a safetensors header: byte offsets are relative to the start of the data section. */
public record TensorEntry(String name, DType dtype, long[] shape, long begin, long end) {
  public TensorEntry {
    shape = shape.clone();
  }

  public long numel() {
    return Tensor.numel(shape);
  }

  public long byteSize() {
    return end - begin;
  }

  /** Bytes of one row (one index of the first dimension); the whole tensor for a scalar. */
  public long rowBytes() {
    return shape.length == 0 || shape[0] == 0 ? byteSize() : byteSize() / shape[0];
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof TensorEntry e && name.equals(e.name) && dtype == e.dtype && Arrays.equals(shape, e.shape)
        && begin == e.begin && end == e.end;
  }

  @Override
  public int hashCode() {
    return name.hashCode() * 31 + Arrays.hashCode(shape);
  }

  @Override
  public String toString() {
    return name + " " + dtype.safetensorsName() + Arrays.toString(shape) + " @[" + begin + ", " + end + ")";
  }
}
