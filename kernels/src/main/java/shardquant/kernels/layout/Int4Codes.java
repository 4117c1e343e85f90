package shardquant.kernels.layout;

/** Argument checks shared by the int4 layouts: shapes and 4-bit code ranges, with the actual values. */
final class Int4Codes {
  private Int4Codes() {}

  /** N·K for a positive shape, as an int: layouts work on one host array per shard. */
  static int count(String layout, int n, int k) {
    if (n <= 0 || k <= 0) {
      throw new IllegalArgumentException(layout + " needs a positive shape, got N = " + n + ", K = " + k);
    }
    long count = (long) n * k;
    if (count > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(layout + " packs at most " + Integer.MAX_VALUE
          + " codes at a time, got N = " + n + ", K = " + k + " (" + count + "); pack it in row shards");
    }
    return (int) count;
  }

  /** Codes must be uint4: PyTorch's packers would silently corrupt neighbouring nibbles otherwise. */
  static void checkCodes(String layout, int[] codes, int n, int k) {
    checkLength(layout, "codes", codes.length, count(layout, n, k));
    for (int i = 0; i < codes.length; i++) {
      if ((codes[i] & ~0xF) != 0) {
        throw new IllegalArgumentException(layout + ": code " + codes[i] + " at [" + i / k + "][" + i % k
            + "] is outside the uint4 range 0..15");
      }
    }
  }

  static void checkLength(String layout, String what, int actual, long expected) {
    if (actual != expected) {
      throw new IllegalArgumentException(layout + ": " + what + " has " + actual + " elements, expected "
          + expected);
    }
  }

  static void checkEvenK(String layout, int k) {
    if (k % 2 != 0) {
      throw new IllegalArgumentException(layout + " packs two codes per byte along K and needs K % 2 == 0, got K = "
          + k);
    }
  }
}
