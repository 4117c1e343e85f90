package shardquant.kernels.golden;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import shardquant.kernels.dtype.Bf16;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.dtype.F16;
import shardquant.kernels.tensor.Tensor;

/**
 * Collects the comparisons of one case against its expected tensors under the rules of the golden
 * README: exact means same dtype, shape and bytes.
 */
public final class GoldenReport {
  private final GoldenCase golden;
  private final List<String> failures = new ArrayList<>();
  private final Set<String> compared = new LinkedHashSet<>();

  GoldenReport(GoldenCase golden) {
    this.golden = golden;
  }

  /** The actual tensor must equal the expected one bit for bit. */
  public void exact(String name, Tensor actual) throws IOException {
    Tensor expected = expected(name, actual);
    if (expected == null) {
      return;
    }
    Mismatch m = Mismatch.of(expected, actual, 0);
    if (m != null) {
      failures.add(name + ": " + m);
    }
  }

  /** Floating tensors may differ by at most {@code ulps} units in the last place of their dtype. */
  public void withinUlps(String name, Tensor actual, int ulps) throws IOException {
    Tensor expected = expected(name, actual);
    if (expected == null) {
      return;
    }
    if (!expected.dtype().isFloating()) {
      throw new IllegalArgumentException(name + " is " + expected.dtype() + ", not a floating tensor");
    }
    Mismatch m = Mismatch.of(expected, actual, ulps);
    if (m != null) {
      failures.add(name + ": " + m + " (more than " + ulps + " ulp)");
    }
  }

  /** At least {@code minFraction} of the elements must be equal. */
  public void fractionEqual(String name, Tensor actual, double minFraction) throws IOException {
    Tensor expected = expected(name, actual);
    if (expected == null) {
      return;
    }
    Mismatch m = Mismatch.of(expected, actual, 0);
    if (m != null && 1.0 - (double) m.count() / expected.numel() < minFraction) {
      failures.add(name + ": " + m + ", more than " + (1 - minFraction) * 100 + "% allowed");
    }
  }

  public void fail(String message) {
    failures.add(message);
  }

  boolean passed() {
    return failures.isEmpty();
  }

  List<String> failures() {
    return failures;
  }

  Set<String> compared() {
    return compared;
  }

  private Tensor expected(String name, Tensor actual) throws IOException {
    compared.add(name);
    if (!golden.has(name)) {
      failures.add(name + ": not in " + golden.file());
      return null;
    }
    Tensor expected = golden.tensor(name);
    if (expected.dtype() != actual.dtype() || !Arrays.equals(expected.shape(), actual.shape())) {
      failures.add(name + ": expected " + expected + ", got " + actual);
      return null;
    }
    return expected;
  }

  /** The first differing element and how many differ. */
  private record Mismatch(long first, long count, String expectedValue, String actualValue) {
    static Mismatch of(Tensor expected, Tensor actual, int ulps) {
      long first = -1;
      long count = 0;
      for (long i = 0; i < expected.numel(); i++) {
        if (!same(expected, actual, i, ulps)) {
          if (first < 0) {
            first = i;
          }
          count++;
        }
      }
      if (count == 0) {
        return null;
      }
      return new Mismatch(first, count, show(expected, first), show(actual, first));
    }

    private static boolean same(Tensor e, Tensor a, long i, int ulps) {
      DType d = e.dtype();
      if (!d.isFloating()) {
        return e.getInt(i) == a.getInt(i);
      }
      float x = e.getFloat(i);
      float y = a.getFloat(i);
      if (ulps == 0) {
        return Float.floatToRawIntBits(x) == Float.floatToRawIntBits(y);
      }
      return Math.abs(ordered(d, x) - ordered(d, y)) <= ulps;
    }

    /** Maps a value's bits in its own dtype onto a line where adjacent representable values differ by one. */
    private static long ordered(DType d, float f) {
      long bits;
      long signBit;
      switch (d) {
        case BF16: bits = Bf16.fromFloat(f) & 0xFFFF; signBit = 0x8000; break;
        case F16: bits = F16.fromFloat(f) & 0xFFFF; signBit = 0x8000; break;
        default: bits = Float.floatToRawIntBits(f) & 0xFFFFFFFFL; signBit = 0x80000000L; break;
      }
      return (bits & signBit) != 0 ? -(bits & (signBit - 1)) : bits;
    }

    private static String show(Tensor t, long i) {
      if (t.dtype().isFloating()) {
        float f = t.getFloat(i);
        return f + " (0x" + Integer.toHexString(Float.floatToRawIntBits(f)) + ")";
      }
      return Integer.toString(t.getInt(i));
    }

    @Override
    public String toString() {
      return "first difference at flat index " + first + " (expected " + expectedValue + ", got " + actualValue
          + "), " + count + " elements differ";
    }
  }
}
