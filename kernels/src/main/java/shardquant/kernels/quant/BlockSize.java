package shardquant.kernels.quant;

import java.util.Arrays;

/**
 * The 2-D {@code block_size} of torchao's affine primitives: every {@code rows x cols} tile of a
 * [N, K] tensor shares one scale and zero point. Per tensor is (N, K), per channel and per token
 * (1, K), per group (1, g), and 2-D blocks anything that divides the shape.
 *
 * <p>Blocks are numbered row-major over the grid of (N / rows) x (K / cols) tiles. That grid is also
 * the flat order of torchao's scale tensor, so the qparams of rows [a, b) of a tensor (a and b
 * multiples of {@code rows}) are grid rows [a / rows, b / rows): a row shard needs nothing else.
 */
public record BlockSize(int rows, int cols) {
  public BlockSize {
    if (rows < 1 || cols < 1) {
      throw new IllegalArgumentException("block size must be at least 1 x 1, got " + rows + " x " + cols);
    }
  }

  /** One block per row: per channel of a weight, per token of an activation. */
  public static BlockSize perRow(long cols) {
    return new BlockSize(1, Math.toIntExact(cols));
  }

  /** One block for the whole [rows, cols] tensor. */
  public static BlockSize perTensor(long rows, long cols) {
    return new BlockSize(Math.toIntExact(rows), Math.toIntExact(cols));
  }

  /** Groups of {@code groupSize} consecutive elements of a row. */
  public static BlockSize group(int groupSize) {
    return new BlockSize(1, groupSize);
  }

  /** Checks that a 2-D shape is made of whole blocks (torchao's _get_reduction_params asserts the same). */
  public void check(long[] shape) {
    if (shape.length != 2) {
      throw new IllegalArgumentException("affine quantization takes a 2-D tensor, got shape " + Arrays.toString(shape));
    }
    if (shape[0] % rows != 0 || shape[1] % cols != 0 || shape[0] < rows || shape[1] < cols) {
      throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " is not made of whole "
          + rows + " x " + cols + " blocks");
    }
  }

  public long gridRows(long[] shape) {
    return shape[0] / rows;
  }

  public long gridCols(long[] shape) {
    return shape[1] / cols;
  }

  /**
   * The shape of the scale torchao's choose_qparams_affine returns for this input shape (keepdim=False
   * after _get_reduction_params): a dimension the block covers whole disappears, one the block leaves
   * at 1 stays, one the block splits leaves its number of blocks. Per channel of [64, 256] gives [64],
   * per tensor [], groups of 32 [64, 8], 8 x 64 blocks [8, 4].
   */
  public long[] qparamShape(long[] shape) {
    check(shape);
    long[] out = new long[2];
    int n = 0;
    int[] block = {rows, cols};
    for (int d = 0; d < 2; d++) {
      if (block[d] == 1 || block[d] != shape[d]) {
        out[n++] = shape[d] / block[d];
      }
    }
    return Arrays.copyOf(out, n);
  }

  @Override
  public String toString() {
    return "(" + rows + ", " + cols + ")";
  }
}
