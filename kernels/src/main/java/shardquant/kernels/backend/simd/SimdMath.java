package shardquant.kernels.backend.simd;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import shardquant.kernels.dtype.DType;

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
    return signed.blend(v, big); // a NaN stays a NaN through the add, the subtract and the sign
  }

  /**
   * {@link DType#round} per lane: the float32 value an op on a tensor of {@code dtype} stores (nearest
   * even, overflow to infinity, f16 subnormals included); F32 unchanged.
   *
   * <p>NaN lanes are not blended back (a blend here cost the affine kernels half their time: JDK 17 gave
   * up inlining and ran it as Java code): a NaN stays a NaN unless the top mantissa bits of its payload
   * are all ones, so that the rounding carry reaches the exponent. Arithmetic only makes the default NaN
   * (0x7fc00000, sign either way), and the kernels refuse NaN input, so no such payload reaches here.
   */
  static FloatVector round(FloatVector v, DType dtype) {
    return switch (dtype) {
      case F32 -> v;
      case BF16 -> roundBf16(v);
      case F16 -> roundF16(v);
      default -> throw new IllegalArgumentException(dtype + " is not a floating dtype");
    };
  }

  /** {@link shardquant.kernels.dtype.Bf16#fromFloat}'s integer rounding: add 0x7fff plus the kept lsb, drop 16 bits. */
  static FloatVector roundBf16(FloatVector v) {
    IntVector bits = v.reinterpretAsInts();
    IntVector lsb = bits.lanewise(VectorOperators.LSHR, 16).and(1);
    return bits.add(lsb).add(0x7fff).and(0xffff0000).reinterpretAsFloats();
  }

  /**
   * {@link shardquant.kernels.dtype.F16#fromFloat} then back, on the magnitude: normal halves drop 13
   * mantissa bits the bf16 way (a carry into the exponent is right); below 2^-14 (subnormal halves)
   * adding 0.5, whose ulp is 2^-24, rounds to a multiple of 2^-24; from 65520 on, infinity.
   */
  static FloatVector roundF16(FloatVector v) {
    FloatVector magnitude = v.abs();
    IntVector bits = magnitude.reinterpretAsInts();
    IntVector lsb = bits.lanewise(VectorOperators.LSHR, 13).and(1);
    FloatVector normal = bits.add(lsb).add(0xfff).and(~0x1fff).reinterpretAsFloats();
    FloatVector subnormal = magnitude.add(0.5f).sub(0.5f);
    FloatVector r = normal.blend(subnormal, magnitude.compare(VectorOperators.LT, 0x1p-14f))
        .blend(Float.POSITIVE_INFINITY, magnitude.compare(VectorOperators.GE, 65520f));
    IntVector sign = v.reinterpretAsInts().and(0x80000000);
    return r.reinterpretAsInts().or(sign).reinterpretAsFloats();
  }
}
