package shardquant.kernels.dtype;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class DTypeTest {
  @Test
  void bf16RoundsToNearestEven() {
    // 1 + 2^-8 lies halfway between bf16 1.0 and 1 + 2^-7: ties go to the even mantissa (1.0).
    assertEquals(1.0f, Bf16.round(1.0f + 0x1p-8f));
    // 1 + 3*2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
    assertEquals(1.0f + 0x1p-6f, Bf16.round(1.0f + 3 * 0x1p-8f));
    assertEquals(1.0f + 0x1p-7f, Bf16.round(1.0f + 0x1p-8f + 0x1p-20f));
    assertEquals(Float.POSITIVE_INFINITY, Bf16.round(Float.MAX_VALUE));
    assertEquals(-0.0f, Bf16.round(-0.0f));
    assertTrue(Float.isNaN(Bf16.round(Float.NaN)));
    assertEquals(0x1p-126f, Bf16.round(0x1p-126f));
  }

  @Test
  void bf16RoundTripsEveryBitPattern() {
    for (int b = 0; b < 65536; b++) {
      float f = Bf16.toFloat((short) b);
      if (!Float.isNaN(f)) {
        assertEquals((short) b, Bf16.fromFloat(f), "bits " + Integer.toHexString(b));
      }
    }
  }

  @Test
  void f16RoundTripsEveryBitPattern() {
    for (int b = 0; b < 65536; b++) {
      float f = F16.toFloat((short) b);
      if (!Float.isNaN(f)) {
        assertEquals((short) b, F16.fromFloat(f), "bits " + Integer.toHexString(b));
      }
    }
  }

  @Test
  void f16RoundsToNearestEvenIncludingSubnormalsAndOverflow() {
    assertEquals(1.0f, F16.round(1.0f + 0x1p-11f));
    assertEquals(1.0f + 0x1p-9f, F16.round(1.0f + 3 * 0x1p-11f));
    assertEquals(0x1p-24f, F16.round(0x1p-24f));
    assertEquals(0.0f, F16.round(0x1p-25f)); // halfway to the smallest subnormal: ties to even (zero)
    assertEquals(0x1p-24f, F16.round(0x1.8p-25f));
    assertEquals(65504f, F16.round(65519f));
    assertEquals(Float.POSITIVE_INFINITY, F16.round(65520f));
    // Rounding up across the normal boundary and into the next binade.
    assertEquals(0x1p-14f, F16.round(0x1p-14f - 0x1p-26f));
    assertEquals(2.0f, F16.round(2.0f - 0x1p-12f));
  }

  @Test
  void f16AgreesWithDoubleRoundingModelOnRandomValues() {
    java.util.Random r = new java.util.Random(7);
    for (int i = 0; i < 200_000; i++) {
      float f = Float.intBitsToFloat(r.nextInt());
      if (Float.isNaN(f) || Math.abs(f) >= 65504f || Math.abs(f) < 0x1p-14f) {
        continue;
      }
      // Reference: round the significand at 10 fraction bits with rint, in double.
      double scale = Math.scalb(1.0, Math.getExponent(f) - 10);
      double expected = Math.rint(f / scale) * scale;
      assertEquals((float) expected, F16.round(f), "value " + f);
    }
  }

  @Test
  void dtypeRoundDelegatesToEachFormat() {
    assertEquals(1.0f + 0x1p-10f, DType.F16.round(1.0f + 0x1p-10f));
    assertEquals(1.0f, DType.BF16.round(1.0f + 0x1p-10f));
    assertEquals(1.0f + 0x1p-20f, DType.F32.round(1.0f + 0x1p-20f));
    assertThrows(IllegalStateException.class, () -> DType.I8.round(1f));
  }

  @Test
  void namesRoundTripAndUnknownNamesAreRejected() {
    for (DType d : DType.values()) {
      assertEquals(d, DType.fromSafetensors(d.safetensorsName()));
      assertEquals(d, DType.fromTorchName("torch." + d.torchName()));
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DType.fromSafetensors("F8_E4M3"));
    assertTrue(e.getMessage().contains("F8_E4M3"), e.getMessage());
  }
}
