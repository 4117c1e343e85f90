package shardquant.kernels.verify;

import java.io.DataInput;
import java.io.DataOutput;
import java.io.IOException;
import java.io.Serializable;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.math.MathContext;
import shardquant.kernels.tensor.Tensor;

/**
 * How far a quantized tensor is from its original: SQNR, max abs error and the fraction of elements
 * that clipped. Built from sums that combine exactly, so the stats of a tensor are the same whatever
 * row shards it was cut into and in whatever order the shards are combined.
 *
 * <p>Why exact: a double sum depends on the order of its terms, and Spark combines shards in any
 * order. Each shard accumulates squares in double over fixed <em>stat blocks</em> (whole rows: units
 * no shard boundary ever cuts), in a fixed order inside the block, and adds each block's double into a
 * {@link BigDecimal}, which adds exactly. The max is order-free.
 *
 * <p>The order inside a block is the one every backend follows, so their stats (and the output files
 * that record them) are identical: element j of the block goes to lane {@code j % LANES}; each lane
 * adds {@code (double) x * x} and {@code e * e} with {@code e = (double) x - d} in element order
 * (no fused multiply-add); the lanes then combine as {@code ((l0 + l1) + (l2 + l3)) + ((l4 + l5) +
 * (l6 + l7))}. A SIMD kernel keeps 8 double lanes (two 4-lane vectors on AVX2); a GPU, 8 partials.
 * Non-finite pairs add nothing to their lane and are counted apart.
 */
public final class QuantStats implements Serializable {
  private static final long serialVersionUID = 1L;

  /** Lanes of the fixed summation order (see the class comment). */
  public static final int LANES = 8;

  private long count;
  private long clipped;
  private BigDecimal signalSquares = BigDecimal.ZERO;
  private BigDecimal errorSquares = BigDecimal.ZERO;
  private float maxAbsError;
  private long nonFinite;

  /** Adds one stat block: original values and their dequantized values, {@code length} elements from {@code from}. */
  public void addBlock(float[] original, float[] dequantized, int from, int length, long clippedInBlock) {
    double[] signal = new double[LANES];
    double[] error = new double[LANES];
    float maxErr = maxAbsError;
    for (int j = 0; j < length; j++) {
      float x = original[from + j];
      float d = dequantized[from + j];
      if (!Float.isFinite(x) || !Float.isFinite(d)) {
        nonFinite++;
        continue;
      }
      double e = (double) x - d;
      signal[j % LANES] += (double) x * x;
      error[j % LANES] += e * e;
      maxErr = Math.max(maxErr, (float) Math.abs(e));
    }
    addSums(length, clippedInBlock, combineLanes(signal), combineLanes(error), maxErr);
  }

  /** The fixed combination of the 8 lane sums: {@code ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))}. */
  public static double combineLanes(double[] l) {
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
  }

  /** Counts non-finite elements a kernel found and left out of its sums. */
  public void addNonFinite(long n) {
    nonFinite += n;
  }

  /**
   * Adds rows [0, rows) and columns [0, cols) of {@code original} against {@code dequantized} (both 2-D,
   * same width), one stat block per row with its clipped count.
   */
  public void addRows(Tensor original, Tensor dequantized, long[] clippedPerRow, long rows, long cols) {
    int width = Math.toIntExact(original.cols());
    float[] x = new float[width];
    float[] d = new float[width];
    for (int r = 0; r < rows; r++) {
      for (int j = 0; j < cols; j++) {
        x[j] = original.getFloat((long) r * width + j);
        d[j] = dequantized.getFloat((long) r * width + j);
      }
      addBlock(x, d, 0, Math.toIntExact(cols), clippedPerRow[r]);
    }
  }

  /** Adds a block whose sums were computed elsewhere (a SIMD or GPU kernel) in the same fixed order. */
  public void addSums(long elements, long clippedInBlock, double signal, double error, float maxErr) {
    count += elements;
    clipped += clippedInBlock;
    signalSquares = signalSquares.add(new BigDecimal(signal));
    errorSquares = errorSquares.add(new BigDecimal(error));
    maxAbsError = Math.max(maxAbsError, maxErr);
  }

  /**
   * Adds blocks whose double sums were added up exactly elsewhere: the same as {@link #addSums} of each
   * block, {@code signal} and {@code error} being the exact sums of their doubles as BigDecimal adds them
   * (value and scale), {@code maxErr} the blocks' largest.
   */
  public void addExactSums(long elements, long clippedInBlocks, BigDecimal signal, BigDecimal error, float maxErr) {
    count += elements;
    clipped += clippedInBlocks;
    signalSquares = signalSquares.add(signal);
    errorSquares = errorSquares.add(error);
    maxAbsError = Math.max(maxAbsError, maxErr);
  }

  /** Merges another shard's stats into this one; exact and order-independent. */
  public QuantStats merge(QuantStats other) {
    count += other.count;
    clipped += other.clipped;
    nonFinite += other.nonFinite;
    signalSquares = signalSquares.add(other.signalSquares);
    errorSquares = errorSquares.add(other.errorSquares);
    maxAbsError = Math.max(maxAbsError, other.maxAbsError);
    return this;
  }

  /** Writes these stats exactly (the sums as unscaled value and scale), for {@link #readFrom}: a shard's stats on their way to its file. */
  public void writeTo(DataOutput out) throws IOException {
    out.writeLong(count);
    out.writeLong(clipped);
    out.writeLong(nonFinite);
    out.writeInt(Float.floatToRawIntBits(maxAbsError));
    writeExact(out, signalSquares);
    writeExact(out, errorSquares);
  }

  /** Stats written by {@link #writeTo}. */
  public static QuantStats readFrom(DataInput in) throws IOException {
    QuantStats s = new QuantStats();
    s.count = in.readLong();
    s.clipped = in.readLong();
    s.nonFinite = in.readLong();
    s.maxAbsError = Float.intBitsToFloat(in.readInt());
    s.signalSquares = readExact(in);
    s.errorSquares = readExact(in);
    return s;
  }

  private static void writeExact(DataOutput out, BigDecimal d) throws IOException {
    byte[] unscaled = d.unscaledValue().toByteArray();
    out.writeInt(d.scale());
    out.writeInt(unscaled.length);
    out.write(unscaled);
  }

  private static BigDecimal readExact(DataInput in) throws IOException {
    int scale = in.readInt();
    byte[] unscaled = new byte[in.readInt()];
    in.readFully(unscaled);
    return new BigDecimal(new BigInteger(unscaled), scale);
  }

  public long count() {
    return count;
  }

  /** Elements whose original or dequantized value was NaN or infinite (excluded from the sums). */
  public long nonFinite() {
    return nonFinite;
  }

  public double clippedFraction() {
    return count == 0 ? 0 : (double) clipped / count;
  }

  public float maxAbsError() {
    return maxAbsError;
  }

  /** Signal-to-quantization-noise ratio in dB; +infinity when the error is zero. */
  public double sqnrDb() {
    if (errorSquares.signum() == 0) {
      return Double.POSITIVE_INFINITY;
    }
    if (signalSquares.signum() == 0) {
      return Double.NEGATIVE_INFINITY;
    }
    return 10 * Math.log10(signalSquares.divide(errorSquares, MathContext.DECIMAL64).doubleValue());
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof QuantStats s && count == s.count && clipped == s.clipped && nonFinite == s.nonFinite
        && signalSquares.compareTo(s.signalSquares) == 0 && errorSquares.compareTo(s.errorSquares) == 0
        && Float.compare(maxAbsError, s.maxAbsError) == 0;
  }

  @Override
  public int hashCode() {
    return Long.hashCode(count) * 31 + Float.hashCode(maxAbsError);
  }

  @Override
  public String toString() {
    return String.format("SQNR %.2f dB, max abs error %.4g, clipped %.4f%% of %d", sqnrDb(), maxAbsError,
        100 * clippedFraction(), count);
  }
}
