package shardquant.arrow;

import java.util.Arrays;
import shardquant.kernels.tensor.Tensor;

/**
 * A row shard of an input tensor: rows [rowStart, rowEnd) of a tensor of tensorShape; data is the
 * shard's Tensor (shape [rowEnd-rowStart, rest of tensorShape...]; for a 1-D tensor the shard is the
 * whole tensor with rowStart 0, rowEnd = tensorShape[0]). A 0-D (scalar) tensor is one row: its only
 * shard is rows [0, 1) with data of shape [].
 */
public record TensorShard(String tensor, long[] tensorShape, long rowStart, long rowEnd, Tensor data) {

  public TensorShard {
    if (tensor == null || tensor.isEmpty()) {
      throw new IllegalArgumentException("tensor shard needs a tensor name, got '" + tensor + "'");
    }
    if (tensorShape == null || data == null) {
      throw new IllegalArgumentException("tensor shard of '" + tensor + "' needs tensorShape and data, got "
          + Arrays.toString(tensorShape) + " and " + data);
    }
    tensorShape = tensorShape.clone();
    long[] expected = shardShape(tensor, tensorShape, rowStart, rowEnd);
    if (!Arrays.equals(data.shape(), expected)) {
      throw new IllegalArgumentException("tensor shard of '" + tensor + "' rows [" + rowStart + ", " + rowEnd
          + ") of shape " + Arrays.toString(tensorShape) + " must hold shape " + Arrays.toString(expected)
          + ", got " + data);
    }
  }

  /** The shape of rows [rowStart, rowEnd) of a tensor of tensorShape, after checking the range. */
  static long[] shardShape(String tensor, long[] tensorShape, long rowStart, long rowEnd) {
    Tensor.numel(tensorShape); // rejects negative dimensions
    long rows = tensorShape.length == 0 ? 1 : tensorShape[0];
    if (rowStart < 0 || rowStart > rowEnd || rowEnd > rows) {
      throw new IllegalArgumentException("rows [" + rowStart + ", " + rowEnd + ") of tensor '" + tensor
          + "' lie outside its " + rows + " rows (shape " + Arrays.toString(tensorShape) + ")");
    }
    if (tensorShape.length == 0) {
      if (rowStart != 0 || rowEnd != 1) {
        throw new IllegalArgumentException("scalar tensor '" + tensor + "' is shipped whole as rows [0, 1), got ["
            + rowStart + ", " + rowEnd + ")");
      }
      return new long[0];
    }
    long[] shape = tensorShape.clone();
    shape[0] = rowEnd - rowStart;
    return shape;
  }
}
