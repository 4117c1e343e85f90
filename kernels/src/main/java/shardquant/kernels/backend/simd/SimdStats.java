package shardquant.kernels.backend.simd;

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
 */
final class SimdStats {
  private static final VectorSpecies<Double> D = DoubleVector.SPECIES_256;
  /** Lanes 4..7: where a D2F conversion with part -1 puts its four floats. */
  private static final VectorMask<Float> UPPER_HALF = VectorMask.fromLong(SimdLoad.F, 0xf0L);

  private DoubleVector signalLo;
  private DoubleVector signalHi;
  private DoubleVector errorLo;
  private DoubleVector errorHi;
  private FloatVector maxErr;
  private long nonFinite;
  private final double[] lanes = new double[8];

  SimdStats() {
    reset();
  }

  private void reset() {
    signalLo = DoubleVector.zero(D);
    signalHi = DoubleVector.zero(D);
    errorLo = DoubleVector.zero(D);
    errorHi = DoubleVector.zero(D);
    maxErr = FloatVector.zero(SimdLoad.F);
    nonFinite = 0;
  }

  /** Adds 8 original values and their dequantized values; lanes outside {@code valid} add nothing. */
  void add(FloatVector x, FloatVector d, VectorMask<Float> valid) {
    VectorMask<Float> finite = x.test(VectorOperators.IS_FINITE).and(d.test(VectorOperators.IS_FINITE));
    VectorMask<Float> use = valid.and(finite);
    nonFinite += valid.trueCount() - use.trueCount();
    FloatVector xs = x.blend(0f, use.not());
    FloatVector ds = d.blend(0f, use.not());
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
    maxErr = maxErr.max(absLo.blend(absHi, UPPER_HALF));
  }

  /** Adds the block's sums (it had {@code elements} elements, {@code clipped} of them clipped) to {@code stats}. */
  void endBlock(QuantStats stats, long elements, long clipped) {
    signalLo.intoArray(lanes, 0);
    signalHi.intoArray(lanes, 4);
    double signal = QuantStats.combineLanes(lanes);
    errorLo.intoArray(lanes, 0);
    errorHi.intoArray(lanes, 4);
    double error = QuantStats.combineLanes(lanes);
    stats.addSums(elements, clipped, signal, error, maxErr.reduceLanes(VectorOperators.MAX));
    stats.addNonFinite(nonFinite);
    reset();
  }

}
