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
 * Feed a block's elements from its start in groups of 8 (the last group masked), then {@link #endBlock}.
 *
 * <p>The running sums live in arrays, not in vector fields: a vector stored into a field is a heap
 * object, so C2 would allocate five of them on every call; array loads and stores are plain moves.
 */
final class SimdStats {
  private static final VectorSpecies<Double> D = DoubleVector.SPECIES_256;
  /** Lanes 4..7: where a D2F conversion with part -1 puts its four floats. */
  private static final VectorMask<Float> UPPER_HALF = VectorMask.fromLong(SimdLoad.F, 0xf0L);

  /** Lanes 0..7 of the sum of squares of the originals, then of the errors. */
  private final double[] signal = new double[8];
  private final double[] error = new double[8];
  private final float[] maxErr = new float[8];
  private long nonFinite;
  private final float[] oneX = new float[8];
  private final float[] oneD = new float[8];
  private static final VectorMask<Float> ALL = SimdLoad.firstLanes(SimdLoad.LANES);

  /**
   * Adds 8 original values and their dequantized values; {@code valid} must be the first n lanes
   * ({@link SimdLoad#firstLanes}), the others add nothing. A convenience over {@link #add(float[],
   * float[], int, int)}, which hot loops should call on arrays instead.
   */
  void add(FloatVector x, FloatVector d, VectorMask<Float> valid) {
    int n = valid.trueCount();
    assert valid.equals(SimdLoad.firstLanes(n)) : valid;
    x.intoArray(oneX, 0);
    d.intoArray(oneD, 0);
    add(oneX, oneD, 0, n);
  }

  /**
   * Adds {@code x[from .. from + n)} and their dequantized values {@code d[from .. from + n)}, the next
   * n elements of the block: all calls but a block's last must add a multiple of 8. The sums are held in
   * locals here and not passed between methods: on JDK 17, C2 boxes a vector that crosses a call it did
   * not inline (SimdStats.add with vector arguments was too big to inline: ~450 bytes allocated per call).
   */
  void add(float[] x, float[] d, int from, int n) {
    DoubleVector signalLo = DoubleVector.fromArray(D, signal, 0);
    DoubleVector signalHi = DoubleVector.fromArray(D, signal, 4);
    DoubleVector errorLo = DoubleVector.fromArray(D, error, 0);
    DoubleVector errorHi = DoubleVector.fromArray(D, error, 4);
    FloatVector max = FloatVector.fromArray(SimdLoad.F, maxErr, 0);
    for (int k = 0; k < n; k += SimdLoad.LANES) {
      boolean full = n - k >= SimdLoad.LANES;
      VectorMask<Float> valid = full ? ALL : SimdLoad.firstLanes(n - k);
      FloatVector xv = full ? FloatVector.fromArray(SimdLoad.F, x, from + k)
          : FloatVector.fromArray(SimdLoad.F, x, from + k, valid);
      FloatVector dv = full ? FloatVector.fromArray(SimdLoad.F, d, from + k)
          : FloatVector.fromArray(SimdLoad.F, d, from + k, valid);
      // x - x and d - d are 0 exactly when both are finite
      VectorMask<Float> use = valid.and(xv.sub(xv).add(dv.sub(dv)).compare(VectorOperators.EQ, 0f));
      nonFinite += valid.trueCount() - use.trueCount();
      FloatVector xs = xv.blend(0f, use.not());
      FloatVector ds = dv.blend(0f, use.not());
      DoubleVector xLo = (DoubleVector) xs.convertShape(VectorOperators.F2D, D, 0);
      DoubleVector xHi = (DoubleVector) xs.convertShape(VectorOperators.F2D, D, 1);
      DoubleVector eLo = xLo.sub((DoubleVector) ds.convertShape(VectorOperators.F2D, D, 0));
      DoubleVector eHi = xHi.sub((DoubleVector) ds.convertShape(VectorOperators.F2D, D, 1));
      signalLo = signalLo.add(xLo.mul(xLo));
      signalHi = signalHi.add(xHi.mul(xHi));
      errorLo = errorLo.add(eLo.mul(eLo));
      errorHi = errorHi.add(eHi.mul(eHi));
      FloatVector absLo = (FloatVector) eLo.abs().convertShape(VectorOperators.D2F, SimdLoad.F, 0);
      FloatVector absHi = (FloatVector) eHi.abs().convertShape(VectorOperators.D2F, SimdLoad.F, -1);
      max = max.max(absLo.blend(absHi, UPPER_HALF));
    }
    signalLo.intoArray(signal, 0);
    signalHi.intoArray(signal, 4);
    errorLo.intoArray(error, 0);
    errorHi.intoArray(error, 4);
    max.intoArray(maxErr, 0);
  }

  /** Adds the block's sums (it had {@code elements} elements, {@code clipped} of them clipped) to {@code stats}. */
  void endBlock(QuantStats stats, long elements, long clipped) {
    float max = 0;
    for (float m : maxErr) {
      max = Math.max(max, m);
    }
    stats.addSums(elements, clipped, QuantStats.combineLanes(signal), QuantStats.combineLanes(error), max);
    stats.addNonFinite(nonFinite);
    Arrays.fill(signal, 0);
    Arrays.fill(error, 0);
    Arrays.fill(maxErr, 0);
    nonFinite = 0;
  }
}
