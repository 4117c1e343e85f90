package shardquant.kernels.quant;

/** The check a packing recipe runs on its own output: pack -> unpack gives back the codes. */
final class PackingCheck {
  private PackingCheck() {}

  /** The pack -> unpack round trip of a layout must give back the codes; a kernel bug otherwise. */
  static void roundTrip(String layout, int[] codes, int[] unpacked) {
    if (!java.util.Arrays.equals(codes, unpacked)) {
      int i = java.util.Arrays.mismatch(codes, unpacked);
      throw new IllegalStateException(layout + ": unpacking the packed codes gives " + unpacked[i] + " at flat index " + i
          + " where the code is " + codes[i] + " (a packing bug; please report it)");
    }
  }
}
