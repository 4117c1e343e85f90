package shardquant.kernels.dtype;

/**
 * bfloat16: the upper 16 bits of an IEEE float32. Conversions round to nearest even, as PyTorch's
 * {@code c10::BFloat16} constructor does (c10/util/BFloat16.h, {@code round_to_nearest_even}); NaN stays NaN.
 */
public final class Bf16 {
  private Bf16() {}

  public static float toFloat(short bits) {
    return Float.intBitsToFloat((bits & 0xFFFF) << 16);
  }

  public static short fromFloat(float value) {
    int bits = Float.floatToRawIntBits(value);
    if (Float.isNaN(value)) {
      return (short) 0x7FC0; // PyTorch's canonical bf16 NaN
    }
    int lsb = (bits >>> 16) & 1;
    int rounded = bits + 0x7FFF + lsb;
    return (short) (rounded >>> 16);
  }

  /** The float32 value nearest to {@code value} that bfloat16 can hold. */
  public static float round(float value) {
    return toFloat(fromFloat(value));
  }
}
