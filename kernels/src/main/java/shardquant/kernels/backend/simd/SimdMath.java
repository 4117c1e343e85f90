package shardquant.kernels.backend.simd;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/** Lane-wise versions of the scalar operations the reference uses, with the reference's exact results. */
final class SimdMath {
  /** 2^23: adding and subtracting it rounds a non-negative float below 2^23 to an integer, ties to even. */
  private static final float ROUNDER = 0x1p23f;

  private SimdMath() {}

  /**
   * {@link Math#rint} per lane (torch.round: half to even), including the sign of a zero result
   * ({@code rint(-0.3) == -0.0}) and NaN. Floats of magnitude 2^23 or more are integers already.
   */
  static FloatVector rint(FloatVector v) {
    FloatVector magnitude = v.abs();
    FloatVector r = magnitude.add(ROUNDER).sub(ROUNDER);
    VectorMask<Float> big = magnitude.compare(VectorOperators.GE, ROUNDER);
    // round the magnitude, then put the sign back (so rint(-0.3) is -0.0, as Math.rint gives)
    IntVector sign = v.reinterpretAsInts().and(0x80000000);
    FloatVector signed = r.reinterpretAsInts().or(sign).reinterpretAsFloats();
    return signed.blend(v, big.or(v.test(VectorOperators.IS_NAN)));
  }

  /**
   * {@link shardquant.kernels.dtype.Bf16#round} per lane (nearest bfloat16, ties to even, overflow to
   * infinity): what a torch op on bf16 tensors stores. NaN lanes are left to the caller: a NaN stays a NaN
   * unless the top 7 bits of its mantissa are all ones (the carry then reaches the sign), which the NaNs
   * arithmetic makes (the CPU's default NaN, 0x7fc00000 or 0xffc00000) never are.
   */
  static FloatVector roundBf16(FloatVector v) {
    IntVector bits = v.reinterpretAsInts();
    IntVector lsb = bits.lanewise(VectorOperators.LSHR, 16).and(1);
    return bits.add(lsb).add(0x7fff).and(0xffff0000).reinterpretAsFloats();
  }
}
