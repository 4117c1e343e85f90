package shardquant.plan;

import java.io.Serializable;
import java.util.Arrays;
import shardquant.kernels.dtype.DType;

/**
 * A tensor of the input checkpoint as its file's header describes it: the file (a local path or a
 * Hadoop FileSystem URI), and where its bytes lie in that file ({@code offset} is absolute).
 */
public record InputTensor(String name, String file, DType dtype, long[] shape, long offset, long byteSize)
    implements Serializable {
  public InputTensor {
    shape = shape.clone();
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  public int rank() {
    return shape.length;
  }

  /** First dimension, or 1 for a scalar. */
  public long rows() {
    return shape.length == 0 ? 1 : shape[0];
  }

  /** Product of the dimensions after the first (1 for 1-D and scalars). */
  public long cols() {
    long c = 1;
    for (int i = 1; i < shape.length; i++) {
      c *= shape[i];
    }
    return c;
  }

  public long rowBytes() {
    return cols() * dtype.byteSize();
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof InputTensor t && name.equals(t.name) && file.equals(t.file) && dtype == t.dtype
        && Arrays.equals(shape, t.shape) && offset == t.offset && byteSize == t.byteSize;
  }

  @Override
  public int hashCode() {
    return name.hashCode();
  }

  @Override
  public String toString() {
    return name + " " + dtype.safetensorsName() + Arrays.toString(shape) + " in " + file;
  }
}
