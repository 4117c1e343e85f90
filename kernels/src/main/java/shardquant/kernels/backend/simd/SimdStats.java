package shardquant.kernels.backend.simd;

import java.util.Arrays;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import shardquant.kernels.verify.QuantStats;

/**
 * A stat block's verification sums in {@link QuantStats}'s fixed 8-lane order: element j of the block goes
 * to lane j % 8. Feed a block's elements from its start, 8 at a time (the last group masked) or in runs
 * that start at a multiple of 8, then {@link #endBlock}.
 *
 * <p>The lane sums live in arrays and each call works on local vectors: the JIT cannot use its vector
 * intrinsics on a vector read back from a field (whose exact class it does not know), and falls back to
 * the Vector API's Java code, a hundred times slower. Lanes 0..3 and 4..7 are summed in separate passes
 * of 4-lane double vectors widened from 4-lane float loads (an 8-float to 4-double conversion has no
 * AVX2 intrinsic); the two halves never mix, so each lane still adds its elements in order. A run is
 * summed first without checking each pair for NaN and infinity, and summed again skipping them in the rare
 * run whose max error shows one.
 */
final class SimdStats {
  private static final VectorSpecies<Float> HALF = FloatVector.SPECIES_128;
  private static final VectorSpecies<Double> D = DoubleVector.SPECIES_256;
  private static final VectorSpecies<Long> L = LongVector.SPECIES_256;
  private static final int LANES = SimdLoad.LANES;

  private static final long ABS = 0x7fffffffffffffffL;
  private static final long INFINITY_BITS = Double.doubleToRawLongBits(Double.POSITIVE_INFINITY);

  private final double[] signal = new double[LANES];
  private final double[] error = new double[LANES];
  /**
   * Max |error| per lane as the bits of a double: non-negative doubles order as their bits (a cheap
   * integer max), and rounding to float is monotonic, so the float of the max is the max of the floats.
   */
  private final long[] maxErrBits = new long[LANES];
  private long nonFinite;
  private final float[] tailX = new float[LANES];
  private final float[] tailD = new float[LANES];

  /** Adds 8 original values and their dequantized values; lanes outside {@code valid} add nothing. */
  void add(FloatVector x, FloatVector d, VectorMask<Float> valid) {
    VectorMask<Float> invalid = valid.not();
    // a zero pair adds +0.0 to both sums (which are never -0.0) and is finite: nothing, as the reference
    x.blend(0f, invalid).intoArray(tailX, 0);
    d.blend(0f, invalid).intoArray(tailD, 0);
    addWhole(tailX, tailD, 0, LANES);
  }

  /**
   * Adds {@code x[from, from + length)} and their dequantized values {@code d[from, from + length)}: the
   * block's next elements, {@code from} falling on the block's element 8c. Same sums as {@link #add} on
   * each 8 of them.
   */
  void add(float[] x, float[] d, int from, int length) {
    int whole = length / LANES * LANES;
    addWhole(x, d, from, whole);
    if (whole < length) {
      Arrays.fill(tailX, 0f);
      Arrays.fill(tailD, 0f);
      System.arraycopy(x, from + whole, tailX, 0, length - whole);
      System.arraycopy(d, from + whole, tailD, 0, length - whole);
      addWhole(tailX, tailD, 0, LANES);
    }
  }

  /** {@link #add(float[], float[], int, int)} from the arrays' start. */
  void add(float[] x, float[] d, int n) {
    add(x, d, 0, n);
  }

  /** A run of whole 8s: each half summed as if all pairs were finite, again skipping them if one was not. */
  private void addWhole(float[] x, float[] d, int from, int length) {
    for (int half = 0; half < LANES; half += LANES / 2) {
      if (!addHalf(x, d, from, length, half, false)) {
        addHalf(x, d, from, length, half, true);
      }
    }
  }

  /**
   * Lanes [half, half + 4) of every 8 elements of {@code [from, from + length)}, length a multiple of 8.
   * Unless {@code skipNonFinite}, returns false and leaves the sums alone if a pair was not finite.
   */
  private boolean addHalf(float[] x, float[] d, int from, int length, int half, boolean skipNonFinite) {
    DoubleVector s = DoubleVector.fromArray(D, signal, half);
    DoubleVector err = DoubleVector.fromArray(D, error, half);
    LongVector maxBits = LongVector.fromArray(L, maxErrBits, half);
    long skipped = 0;
    for (int i = from + half; i < from + length; i += LANES) {
      DoubleVector xv = (DoubleVector) FloatVector.fromArray(HALF, x, i).convertShape(VectorOperators.F2D, D, 0);
      DoubleVector dv = (DoubleVector) FloatVector.fromArray(HALF, d, i).convertShape(VectorOperators.F2D, D, 0);
      DoubleVector e = xv.sub(dv);
      if (skipNonFinite) {
        // x - d of two floats cannot overflow a double: it is finite exactly when both are
        VectorMask<Double> skip = e.abs().compare(VectorOperators.LE, Double.MAX_VALUE).not();
        skipped += skip.trueCount();
        xv = xv.blend(0, skip);
        e = e.blend(0, skip);
      }
      s = s.add(xv.mul(xv));
      err = err.add(e.mul(e));
      maxBits = maxBits.max(e.reinterpretAsLongs().and(ABS));
    }
    if (!skipNonFinite && maxBits.compare(VectorOperators.GE, INFINITY_BITS).anyTrue()) {
      return false;
    }
    nonFinite += skipped;
    s.intoArray(signal, half);
    err.intoArray(error, half);
    maxBits.intoArray(maxErrBits, half);
    return true;
  }

  /** Adds the block's sums (it had {@code elements} elements, {@code clipped} of them clipped) to {@code stats}. */
  void endBlock(QuantStats stats, long elements, long clipped) {
    float max = 0f;
    for (long m : maxErrBits) {
      max = Math.max(max, (float) Double.longBitsToDouble(m));
    }
    stats.addSums(elements, clipped, QuantStats.combineLanes(signal), QuantStats.combineLanes(error), max);
    stats.addNonFinite(nonFinite);
    Arrays.fill(signal, 0);
    Arrays.fill(error, 0);
    Arrays.fill(maxErrBits, 0);
    nonFinite = 0;
  }
}
