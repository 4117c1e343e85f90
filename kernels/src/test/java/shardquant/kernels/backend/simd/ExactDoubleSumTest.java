package shardquant.kernels.backend.simd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.math.BigDecimal;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** ExactDoubleSum gives the BigDecimal that adding each double's new BigDecimal(double) gives: value and scale. */
class ExactDoubleSumTest {
  private static void check(double... values) {
    ExactDoubleSum sum = new ExactDoubleSum();
    BigDecimal expected = BigDecimal.ZERO;
    for (double v : values) {
      sum.add(v);
      expected = expected.add(new BigDecimal(v));
    }
    BigDecimal got = sum.total();
    assertEquals(expected.unscaledValue(), got.unscaledValue());
    assertEquals(expected.scale(), got.scale());
  }

  @Test
  void edgeValues() {
    check();
    check(0.0);
    check(0.0, -0.0);
    check(1.0);
    check(3.0, 1e300, 0.5);
    check(Double.MIN_VALUE);
    check(Double.MIN_VALUE, Double.MIN_NORMAL, Double.MAX_VALUE);
    check(Double.MAX_VALUE, Double.MAX_VALUE, Double.MAX_VALUE);
    check(0x1p-1022, 0x1.fffffffffffffp-1023, 0.1, 1e-320);
    check(1024.0, 4096.0, 0x1p60);
  }

  @Test
  void randomTermsOfEveryMagnitude() {
    SplittableRandom r = new SplittableRandom(16);
    for (int t = 0; t < 300; t++) {
      double[] v = new double[1 + r.nextInt(200)];
      int spread = 1 + r.nextInt(2046);
      int base = r.nextInt(2047 - spread);
      for (int i = 0; i < v.length; i++) {
        long exponent = base + r.nextInt(spread);
        v[i] = Double.longBitsToDouble(exponent << 52 | (r.nextLong() & ((1L << 52) - 1)) >>> r.nextInt(53));
      }
      check(v);
    }
  }

  @Test
  void manyAddsCarry() {
    ExactDoubleSum sum = new ExactDoubleSum();
    for (int i = 0; i < 3_000_000; i++) {
      sum.add(Double.longBitsToDouble(0x7fefffffffffffffL - i % 7)); // near MAX_VALUE: every digit near full
    }
    BigDecimal expected = BigDecimal.ZERO;
    for (int j = 0; j < 7; j++) {
      long times = (3_000_000 - j + 6) / 7;
      expected = expected.add(new BigDecimal(Double.longBitsToDouble(0x7fefffffffffffffL - j)).multiply(BigDecimal.valueOf(times)));
    }
    assertEquals(0, expected.compareTo(sum.total()));
  }

  @Test
  void refusesNegativeAndNonFinite() {
    ExactDoubleSum sum = new ExactDoubleSum();
    assertThrows(IllegalArgumentException.class, () -> sum.add(-1.0));
    assertThrows(IllegalArgumentException.class, () -> sum.add(Double.NaN));
    assertThrows(IllegalArgumentException.class, () -> sum.add(Double.POSITIVE_INFINITY));
  }
}
