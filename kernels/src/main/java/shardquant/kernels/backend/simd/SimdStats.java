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
 * the Vector API's Java code, a hundred times slower. Each 8 floats are widened to two 4-lane double
 * vectors, lanes 0..3 and 4..7 ({@code convertShape(F2D, D, part)}, an intrinsic on Java 17 as on 25), summed
 * in two sets of accumulators that never mix, so each lane still adds its elements in order. No 4-lane
 * float vector is used: the Vector API's Java fallback for a conversion, which runs until the JIT has
 * compiled a loop (and throughout the backend's self-check), reads its source through
 * {@code FloatVector.toArray}, so a 4-lane source puts a second class into the type profile of the
 * {@code intoArray} every kernel stores with, and C2 then compiled those stores as Java calls (int4,
 * intx and 8da4w ran 35-40% slower on Java 17, measured). A run is summed first without checking each
 * pair for NaN and infinity, and summed again skipping them in the rare run whose max error shows one.
 */
final class SimdStats {
  private static final VectorSpecies<Float> F = SimdLoad.F;
  private static final VectorSpecies<Double> D = DoubleVector.SPECIES_256;
  private static final VectorSpecies<Long> L = LongVector.SPECIES_256;
  private static final int LANES = SimdLoad.LANES;
  /** Lanes 4..7 start here. */
  private static final int HALF = LANES / 2;

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

  /** A run of whole 8s, summed as if all pairs were finite, again skipping them if one was not. */
  private void addWhole(float[] x, float[] d, int from, int length) {
    if (!addRun(x, d, from, length, false)) {
      addRun(x, d, from, length, true);
    }
  }

  /**
   * Every 8 elements of {@code [from, from + length)}, length a multiple of 8. Unless
   * {@code skipNonFinite}, returns false and leaves the sums alone if a pair was not finite.
   */
  private boolean addRun(float[] x, float[] d, int from, int length, boolean skipNonFinite) {
    DoubleVector sLow = DoubleVector.fromArray(D, signal, 0);
    DoubleVector sHigh = DoubleVector.fromArray(D, signal, HALF);
    DoubleVector errLow = DoubleVector.fromArray(D, error, 0);
    DoubleVector errHigh = DoubleVector.fromArray(D, error, HALF);
    LongVector maxLow = LongVector.fromArray(L, maxErrBits, 0);
    LongVector maxHigh = LongVector.fromArray(L, maxErrBits, HALF);
    long skipped = 0;
    for (int i = from; i < from + length; i += LANES) {
      FloatVector xf = FloatVector.fromArray(F, x, i);
      FloatVector df = FloatVector.fromArray(F, d, i);
      DoubleVector xLow = (DoubleVector) xf.convertShape(VectorOperators.F2D, D, 0);
      DoubleVector xHigh = (DoubleVector) xf.convertShape(VectorOperators.F2D, D, 1);
      DoubleVector eLow = xLow.sub((DoubleVector) df.convertShape(VectorOperators.F2D, D, 0));
      DoubleVector eHigh = xHigh.sub((DoubleVector) df.convertShape(VectorOperators.F2D, D, 1));
      if (skipNonFinite) {
        // x - d of two floats cannot overflow a double: it is finite exactly when both are
        VectorMask<Double> skipLow = eLow.abs().compare(VectorOperators.LE, Double.MAX_VALUE).not();
        VectorMask<Double> skipHigh = eHigh.abs().compare(VectorOperators.LE, Double.MAX_VALUE).not();
        skipped += skipLow.trueCount() + skipHigh.trueCount();
        xLow = xLow.blend(0, skipLow);
        eLow = eLow.blend(0, skipLow);
        xHigh = xHigh.blend(0, skipHigh);
        eHigh = eHigh.blend(0, skipHigh);
      }
      sLow = sLow.add(xLow.mul(xLow));
      sHigh = sHigh.add(xHigh.mul(xHigh));
      errLow = errLow.add(eLow.mul(eLow));
      errHigh = errHigh.add(eHigh.mul(eHigh));
      maxLow = maxLow.max(eLow.reinterpretAsLongs().and(ABS));
      maxHigh = maxHigh.max(eHigh.reinterpretAsLongs().and(ABS));
    }
    if (!skipNonFinite && (maxLow.compare(VectorOperators.GE, INFINITY_BITS).anyTrue()
        || maxHigh.compare(VectorOperators.GE, INFINITY_BITS).anyTrue())) {
      return false;
    }
    nonFinite += skipped;
    sLow.intoArray(signal, 0);
    sHigh.intoArray(signal, HALF);
    errLow.intoArray(error, 0);
    errHigh.intoArray(error, HALF);
    maxLow.intoArray(maxErrBits, 0);
    maxHigh.intoArray(maxErrBits, HALF);
    return true;
  }

  // Blocks ended with endRow, kept here until flush: exact sums instead of a BigDecimal per block.
  private final ExactDoubleSum signalTotal = new ExactDoubleSum();
  private final ExactDoubleSum errorTotal = new ExactDoubleSum();
  private long elementsTotal;
  private long clippedTotal;
  private long nonFiniteTotal;
  private float maxTotal;

  /**
   * Ends the block as {@link #endBlock} does, keeping its sums here; {@link #flush} adds all blocks ended
   * so to a {@link QuantStats} at once, with the same result as an {@code endBlock} of each.
   */
  void endRow(long elements, long clipped) {
    float max = 0f;
    for (long m : maxErrBits) {
      max = Math.max(max, (float) Double.longBitsToDouble(m));
    }
    signalTotal.add(QuantStats.combineLanes(signal));
    errorTotal.add(QuantStats.combineLanes(error));
    elementsTotal += elements;
    clippedTotal += clipped;
    nonFiniteTotal += nonFinite;
    maxTotal = Math.max(maxTotal, max);
    Arrays.fill(signal, 0);
    Arrays.fill(error, 0);
    Arrays.fill(maxErrBits, 0);
    nonFinite = 0;
  }

  /** Adds the blocks {@link #endRow} ended since the last flush to {@code stats}. */
  void flush(QuantStats stats) {
    stats.addExactSums(elementsTotal, clippedTotal, signalTotal.total(), errorTotal.total(), maxTotal);
    stats.addNonFinite(nonFiniteTotal);
    signalTotal.clear();
    errorTotal.clear();
    elementsTotal = 0;
    clippedTotal = 0;
    nonFiniteTotal = 0;
    maxTotal = 0f;
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
