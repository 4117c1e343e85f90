package shardquant.kernels.backend.simd;

import java.util.Arrays;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import shardquant.kernels.verify.QuantStats;

/**
 * A stat block's verification sums in {@link QuantStats}'s fixed 8-lane order, on two 4-lane double
 * vectors per sum: lane j of a float vector of the block's elements [8c, 8c + 8) is lane j of the sums.
 * Feed a block's elements from its start in groups of 8 (the last group masked) or in runs of floats,
 * then {@link #endBlock}.
 */
final class SimdStats {
  private static final VectorSpecies<Double> D = DoubleVector.SPECIES_256;
  private static final int LANES = SimdLoad.LANES;

  /**
   * The 8 lanes of each sum, and of the max abs error (kept in double: rounding to float is monotone,
   * so the float of the max is the max of the floats), between calls. Within a call they live in
   * local vectors: a vector kept in a field is a heap object, allocated on every update.
   */
  private final double[] signal = new double[LANES];
  private final double[] error = new double[LANES];
  private final double[] maxError = new double[LANES];
  private final float[] oneX = new float[LANES];
  private final float[] oneD = new float[LANES];
  private long nonFinite;

  /**
   * Adds 8 original values and their dequantized values; lanes outside {@code valid} add nothing.
   * Hot loops should prefer runs ({@link #add(float[], float[], int)}): a vector passed to a call C2
   * did not inline is boxed, and C2 stops inlining in large methods.
   */
  void add(FloatVector x, FloatVector d, VectorMask<Float> valid) {
    x.blend(0f, valid.not()).intoArray(oneX, 0);
    d.blend(0f, valid.not()).intoArray(oneD, 0);
    add(oneX, oneD, LANES);
  }

  /**
   * Adds the block's next {@code n} elements: {@code x[0, n)} and their dequantized values
   * {@code d[0, n)}. Only the block's last run may have {@code n % 8 != 0}; both arrays must hold
   * {@code n} rounded up to 8 values, and the lanes past {@code n} are overwritten with zeros (a pair
   * of zeros adds nothing to any lane). One call per run keeps the accumulators in registers.
   */
  void add(float[] x, float[] d, int n) {
    for (int k = n; k % LANES != 0; k++) {
      x[k] = 0;
      d[k] = 0;
    }
    // Nearly always every pair is finite: sum without masks, and redo the run with them if not.
    if (!accumulate(x, d, n, false)) {
      accumulate(x, d, n, true);
    }
  }

  /**
   * Adds the run to the lanes; without {@code mask}, only if all its values are finite (returns
   * false, adding nothing, if one is not). The padding lanes are zeros: finite, and not elements.
   */
  private boolean accumulate(float[] x, float[] d, int n, boolean mask) {
    DoubleVector signalLo = DoubleVector.fromArray(D, signal, 0);
    DoubleVector signalHi = DoubleVector.fromArray(D, signal, 4);
    DoubleVector errorLo = DoubleVector.fromArray(D, error, 0);
    DoubleVector errorHi = DoubleVector.fromArray(D, error, 4);
    DoubleVector maxLo = DoubleVector.fromArray(D, maxError, 0);
    DoubleVector maxHi = DoubleVector.fromArray(D, maxError, 4);
    FloatVector poison = FloatVector.zero(SimdLoad.F); // v * 0 is NaN for v infinite or NaN, else +-0
    long finiteLanes = 0;
    for (int i = 0; i < n; i += LANES) {
      FloatVector xs = FloatVector.fromArray(SimdLoad.F, x, i);
      FloatVector ds = FloatVector.fromArray(SimdLoad.F, d, i);
      if (mask) {
        VectorMask<Float> finite = xs.test(VectorOperators.IS_FINITE).and(ds.test(VectorOperators.IS_FINITE));
        finiteLanes += finite.trueCount();
        xs = xs.blend(0f, finite.not());
        ds = ds.blend(0f, finite.not());
      } else {
        poison = poison.add(xs.mul(0f)).add(ds.mul(0f));
      }
      DoubleVector xLo = (DoubleVector) xs.convertShape(VectorOperators.F2D, D, 0);
      DoubleVector xHi = (DoubleVector) xs.convertShape(VectorOperators.F2D, D, 1);
      DoubleVector eLo = xLo.sub((DoubleVector) ds.convertShape(VectorOperators.F2D, D, 0));
      DoubleVector eHi = xHi.sub((DoubleVector) ds.convertShape(VectorOperators.F2D, D, 1));
      signalLo = signalLo.add(xLo.mul(xLo));
      signalHi = signalHi.add(xHi.mul(xHi));
      errorLo = errorLo.add(eLo.mul(eLo));
      errorHi = errorHi.add(eHi.mul(eHi));
      maxLo = maxLo.max(eLo.abs());
      maxHi = maxHi.max(eHi.abs());
    }
    if (mask) {
      nonFinite += (n + LANES - 1) / LANES * LANES - finiteLanes;
    } else if (poison.test(VectorOperators.IS_NAN).anyTrue()) {
      return false;
    }
    signalLo.intoArray(signal, 0);
    signalHi.intoArray(signal, 4);
    errorLo.intoArray(error, 0);
    errorHi.intoArray(error, 4);
    maxLo.intoArray(maxError, 0);
    maxHi.intoArray(maxError, 4);
    return true;
  }

  /** Adds the block's sums (it had {@code elements} elements, {@code clipped} of them clipped) to {@code stats}. */
  void endBlock(QuantStats stats, long elements, long clipped) {
    double maxErr = 0;
    for (double m : maxError) {
      maxErr = Math.max(maxErr, m);
    }
    stats.addSums(elements, clipped, QuantStats.combineLanes(signal), QuantStats.combineLanes(error), (float) maxErr);
    stats.addNonFinite(nonFinite);
    Arrays.fill(signal, 0);
    Arrays.fill(error, 0);
    Arrays.fill(maxError, 0);
    nonFinite = 0;
  }
}
