package shardquant.kernels.verify;

import java.io.Serializable;
import java.math.BigDecimal;
import java.math.MathContext;

/**
 * How far a quantized tensor is from its original: SQNR, max abs error and the fraction of elements
 * that clipped. Built from sums that combine exactly, so the stats of a tensor are the same whatever
 * row shards it was cut into and in whatever order the shards are combined.
 *
 * <p>Why exact: a double sum depends on the order of its terms, and Spark combines shards in any
 * order. Each shard accumulates squares in double over fixed <em>stat blocks</em> (whole rows, or
 * NF4's 64-element blocks: units no shard boundary ever cuts), in a fixed order inside the block, and
 * adds each block's double into a {@link BigDecimal}, which adds exactly. The max is order-free.
 */
public final class QuantStats implements Serializable {
  private static final long serialVersionUID = 1L;

  private long count;
  private long clipped;
  private BigDecimal signalSquares = BigDecimal.ZERO;
  private BigDecimal errorSquares = BigDecimal.ZERO;
  private float maxAbsError;
  private long nonFinite;

  /** Adds one stat block: original values and their dequantized values, {@code length} elements from {@code from}. */
  public void addBlock(float[] original, float[] dequantized, int from, int length, long clippedInBlock) {
    double signal = 0;
    double error = 0;
    float maxErr = maxAbsError;
    for (int i = from; i < from + length; i++) {
      float x = original[i];
      float d = dequantized[i];
      if (!Float.isFinite(x) || !Float.isFinite(d)) {
        nonFinite++;
        continue;
      }
      double e = (double) x - d;
      signal += (double) x * x;
      error += e * e;
      maxErr = Math.max(maxErr, (float) Math.abs(e));
    }
    addSums(length, clippedInBlock, signal, error, maxErr);
  }

  /** Adds a block whose sums were computed elsewhere (a SIMD or GPU kernel) in the same fixed order. */
  public void addSums(long elements, long clippedInBlock, double signal, double error, float maxErr) {
    count += elements;
    clipped += clippedInBlock;
    signalSquares = signalSquares.add(new BigDecimal(signal));
    errorSquares = errorSquares.add(new BigDecimal(error));
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
