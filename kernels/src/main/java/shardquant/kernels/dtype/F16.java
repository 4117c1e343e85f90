package shardquant.kernels.dtype;

/**
 * IEEE binary16. {@link Float#floatToFloat16} arrives only in Java 20, so the conversion is written
 * here: round to nearest even with subnormals, overflow to infinity, as {@code c10::Half} does.
 */
public final class F16 {
  private F16() {}

  public static float toFloat(short bits) {
    int h = bits & 0xFFFF;
    int sign = (h & 0x8000) << 16;
    int exp = (h >>> 10) & 0x1F;
    int mant = h & 0x3FF;
    if (exp == 0x1F) {
      return Float.intBitsToFloat(sign | 0x7F800000 | (mant << 13));
    }
    if (exp == 0) {
      // Subnormal or zero: mant * 2^-24, exact in float32.
      float magnitude = mant * 0x1p-24f;
      return sign != 0 ? -magnitude : magnitude;
    }
    return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
  }

  public static short fromFloat(float value) {
    int bits = Float.floatToRawIntBits(value);
    int sign = (bits >>> 16) & 0x8000;
    if (Float.isNaN(value)) {
      return (short) (sign | 0x7E00);
    }
    float abs = Math.abs(value);
    if (abs >= 65520f) { // rounds to infinity
      return (short) (sign | 0x7C00);
    }
    if (abs < 0x1p-14f) {
      // Subnormal range: scale so the unit in the last place is 1, then round to nearest even.
      int mant = (int) Math.rint(abs * 0x1p24f);
      return (short) (sign | mant);
    }
    int absBits = bits & 0x7FFFFFFF;
    int lsb = (absBits >>> 13) & 1;
    int rounded = absBits + 0xFFF + lsb;
    int exp = (rounded >>> 23) - 112;
    int mant = (rounded >>> 13) & 0x3FF;
    return (short) (sign | (exp << 10) | mant);
  }

  public static float round(float value) {
    return toFloat(fromFloat(value));
  }
}
