package shardquant.kernels.quant;

import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** Feeds a recipe's verification sums to {@link QuantStats}, one stat block per row. */
final class Verify {
  private Verify() {}

  /** Rows [0, rows) and columns [0, cols) of {@code original} against {@code dequantized} (same shape). */
  static void addRows(QuantStats stats, Tensor original, Tensor dequantized, long[] clippedPerRow, long rows, long cols) {
    int width = Math.toIntExact(original.cols());
    float[] x = new float[width];
    float[] d = new float[width];
    for (int r = 0; r < rows; r++) {
      for (int j = 0; j < cols; j++) {
        x[j] = original.getFloat((long) r * width + j);
        d[j] = dequantized.getFloat((long) r * width + j);
      }
      stats.addBlock(x, d, 0, Math.toIntExact(cols), clippedPerRow[r]);
    }
  }

  /** The pack -> unpack round trip of a layout must give back the codes; a kernel bug otherwise. */
  static void roundTrip(String layout, int[] codes, int[] unpacked) {
    if (!java.util.Arrays.equals(codes, unpacked)) {
      int i = java.util.Arrays.mismatch(codes, unpacked);
      throw new IllegalStateException(layout + ": unpacking the packed codes gives " + unpacked[i] + " at flat index " + i
          + " where the code is " + codes[i] + " (a packing bug; please report it)");
    }
  }
}
