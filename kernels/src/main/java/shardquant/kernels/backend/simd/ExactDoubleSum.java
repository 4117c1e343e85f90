package shardquant.kernels.backend.simd;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Arrays;

/**
 * The exact sum of finite non-negative doubles, as the {@link BigDecimal} that adding each one's
 * {@code new BigDecimal(double)} to {@link BigDecimal#ZERO} gives: the same value and the same scale
 * (the largest of the terms' scales, {@link BigDecimal#add}'s rule). {@code new BigDecimal(double)} of a
 * fraction costs a power of five (profiled: about a tenth of the int8 kernel's time, two per row), so the
 * SIMD kernels add each stat block's doubles here and build one BigDecimal per shard.
 *
 * <p>A double is {@code m * 2^(s - 1074)} with an integer {@code m < 2^53} and {@code 0 <= s < 2046}:
 * its bits are added as 32-bit digits into bins of weight {@code 2^(32k - 1074)}, in longs with room for
 * 2^29 adds between carries.
 */
final class ExactDoubleSum {
  private static final int BINS = 68;
  private static final long DIGIT = 0xffffffffL;
  private static final int ADDS_BETWEEN_CARRIES = 1 << 29;

  private final long[] bins = new long[BINS];
  private int adds;
  /** The exponent {@code s} of the lowest set bit of any value added (Integer.MAX_VALUE: none but zeros). */
  private int lowestBit = Integer.MAX_VALUE;

  /** Adds {@code v}, finite and not negative (a -0.0 adds zero). */
  void add(double v) {
    long bits = Double.doubleToRawLongBits(v);
    if ((bits & 0x7fffffffffffffffL) == 0) {
      return;
    }
    if (bits < 0 || (bits >>> 52) >= 0x7ff) {
      throw new IllegalArgumentException("exact sums take finite non-negative doubles, got " + v);
    }
    int exponent = (int) (bits >>> 52);
    long m = bits & ((1L << 52) - 1);
    int s = 0;
    if (exponent != 0) {
      m |= 1L << 52;
      s = exponent - 1;
    }
    lowestBit = Math.min(lowestBit, s + Long.numberOfTrailingZeros(m));
    int k = s >>> 5;
    int o = s & 31;
    long low = (m & DIGIT) << o;
    long high = (m >>> 32) << o;
    bins[k] += low & DIGIT;
    bins[k + 1] += (low >>> 32) + (high & DIGIT);
    bins[k + 2] += high >>> 32;
    if (++adds == ADDS_BETWEEN_CARRIES) {
      carry();
    }
  }

  private void carry() {
    for (int k = 0; k < BINS - 1; k++) {
      bins[k + 1] += bins[k] >>> 32;
      bins[k] &= DIGIT;
    }
    adds = 0;
  }

  /** The sum, with {@code new BigDecimal(double)}-then-add's scale. */
  BigDecimal total() {
    if (lowestBit == Integer.MAX_VALUE) {
      return BigDecimal.ZERO;
    }
    carry();
    BigInteger total = BigInteger.ZERO;
    for (int k = BINS - 1; k >= 0; k--) {
      total = total.shiftLeft(32).add(BigInteger.valueOf(bins[k]));
    }
    // total * 2^-1074; its lowest set bit has weight 2^(lowestBit - 1074), so 10^scale times it is an integer
    int scale = Math.max(0, 1074 - lowestBit);
    BigInteger unscaled = total.multiply(BigInteger.valueOf(5).pow(scale));
    int twos = scale - 1074;
    unscaled = twos >= 0 ? unscaled.shiftLeft(twos) : unscaled.shiftRight(-twos);
    return new BigDecimal(unscaled, scale);
  }

  void clear() {
    Arrays.fill(bins, 0);
    adds = 0;
    lowestBit = Integer.MAX_VALUE;
  }
}
