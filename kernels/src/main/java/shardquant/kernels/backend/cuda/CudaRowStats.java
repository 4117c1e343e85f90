package shardquant.kernels.backend.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import shardquant.kernels.verify.QuantStats;

/**
 * The per-row verification sums the kernels write ({@code SqRowStats} in src/main/cuda/sq_common.cuh,
 * {@value #BYTES} bytes a row): the lane-combined sums of {@link QuantStats}' fixed order, the max error,
 * the clipped count, and the count of non-finite pairs.
 */
final class CudaRowStats {
  static final int BYTES = 32;

  private final ByteBuffer bytes;
  private final int rows;

  /** {@code bytes}: {@code rows} records from its position. */
  CudaRowStats(ByteBuffer bytes, int rows) {
    this.bytes = bytes.slice().order(ByteOrder.LITTLE_ENDIAN);
    this.rows = rows;
  }

  /** Whether any row found a non-finite value (the shard then runs on the CPU backend, which refuses it or sums it). */
  boolean anyNonFinite() {
    for (int r = 0; r < rows; r++) {
      if (bytes.getInt(r * BYTES + 24) != 0) {
        return true;
      }
    }
    return false;
  }

  /** Adds every row, a stat block of {@code cols} elements, to {@code stats}. */
  void addTo(QuantStats stats, long cols) {
    for (int r = 0; r < rows; r++) {
      int at = r * BYTES;
      stats.addSums(cols, bytes.getInt(at + 20), bytes.getDouble(at), bytes.getDouble(at + 8), bytes.getFloat(at + 16));
      stats.addNonFinite(bytes.getInt(at + 24));
    }
  }
}
