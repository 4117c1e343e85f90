package shardquant.exec;

import shardquant.kernels.quant.PartSpec;
import shardquant.plan.Plan;

/**
 * Where a shard's piece of a stored part lies in the output file. A part that grows along dimension
 * d is a row-major array; the piece covers indices [along, along + piece[d]) of d for every index of
 * the dimensions before d, so it is {@code outer} runs of {@code piece[d] * inner} bytes. For d = 0
 * that is one contiguous run; int4-tile-packed's {@code scale_and_zero} [K/g][N][2] (d = 1) is K/g
 * runs. Replicated parts (d = -1) are one run of the whole part, taken from the shard at row 0.
 */
public final class Placement {
  /** Receives one run: {@code length} bytes from the piece's byte {@code pieceOffset} go to the file's byte {@code fileOffset}. */
  public interface Run {
    void accept(long pieceOffset, long fileOffset, long length) throws java.io.IOException;
  }

  private Placement() {}

  /** The runs of part {@code i} of {@code t}'s piece from {@code shard}; none for a replicated part of a shard not at row 0. */
  public static void runs(Plan plan, Plan.Tensor t, Plan.Shard shard, int i, long[] pieceShape, long dataStart, Run run)
      throws java.io.IOException {
    Plan.StoredPart part = t.parts().get(i);
    long base = dataStart + part.offset();
    if (part.rowDim() == PartSpec.REPLICATED) {
      if (shard.rowStart() == 0) {
        run.accept(0, base, part.byteSize());
      }
      return;
    }
    runs(part, offsetAlongRowDim(plan, t, shard, i), pieceShape, base, run);
  }

  /**
   * The runs of a piece of {@code part} (stored at {@code base}) that starts {@code along} into the
   * part's row dimension: where a shard's piece goes in an output file, or where a repacked shard's
   * source piece lies in its input file.
   */
  public static void runs(Plan.StoredPart part, long along, long[] pieceShape, long base, Run run) throws java.io.IOException {
    long[] full = part.shape();
    int d = part.rowDim();
    long outer = 1;
    for (int k = 0; k < d; k++) {
      outer *= full[k];
    }
    long inner = part.dtype().byteSize();
    for (int k = d + 1; k < full.length; k++) {
      inner *= full[k];
    }
    long length = pieceShape[d] * inner;
    for (long o = 0; o < outer; o++) {
      run.accept(o * length, base + (o * full[d] + along) * inner, length);
    }
  }

  /** Where along its row dimension a shard's piece starts: that part's size for the rows before the shard. */
  static long offsetAlongRowDim(Plan plan, Plan.Tensor t, Plan.Shard shard, int i) {
    if (shard.rowStart() == 0) {
      return 0;
    }
    if (t.action() == Plan.Action.COPY) {
      return shard.rowStart();
    }
    PartSpec before = plan.partsOfRows(t, shard.rowStart()).get(i);
    return before.shape()[before.rowDim()];
  }
}
