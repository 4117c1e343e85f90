package shardquant.kernels.dtype;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.TreeMap;
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
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DType.fromSafetensors("F8_E9"));
    assertTrue(e.getMessage().contains("F8_E9"), e.getMessage());
  }

  /** The reference crate's byte-wide dtypes with its bit sizes ({@code Dtype::bitsize}) and torch's names. */
  @Test
  void everyByteWideSafetensorsDtypeIsKnownWithItsSizeAndTorchName() {
    Map<String, String> reference = Map.ofEntries(Map.entry("BOOL", "8 bool"), Map.entry("U8", "8 uint8"),
        Map.entry("I8", "8 int8"), Map.entry("F8_E5M2", "8 float8_e5m2"), Map.entry("F8_E4M3", "8 float8_e4m3fn"),
        Map.entry("F8_E8M0", "8 float8_e8m0fnu"), Map.entry("F8_E4M3FNUZ", "8 float8_e4m3fnuz"),
        Map.entry("F8_E5M2FNUZ", "8 float8_e5m2fnuz"), Map.entry("I16", "16 int16"), Map.entry("U16", "16 uint16"),
        Map.entry("F16", "16 float16"), Map.entry("BF16", "16 bfloat16"), Map.entry("I32", "32 int32"),
        Map.entry("U32", "32 uint32"), Map.entry("F32", "32 float32"), Map.entry("C64", "64 complex64"),
        Map.entry("F64", "64 float64"), Map.entry("I64", "64 int64"), Map.entry("U64", "64 uint64"));
    Map<String, String> ours = new TreeMap<>();
    for (DType d : DType.values()) {
      ours.put(d.safetensorsName(), d.byteSize() * 8 + " " + d.torchName());
    }
    assertEquals(new TreeMap<>(reference), ours);
    for (String subByte : DType.SUB_BYTE) {
      assertNull(DType.fromSafetensorsOrNull(subByte), subByte);
    }
  }

  @Test
  void onlyTheDtypesShardquantComputesWithAreQuantizable() {
    for (DType d : DType.values()) {
      boolean computes = d == DType.F32 || d == DType.BF16 || d == DType.F16;
      assertEquals(computes, d.quantizable(), d.toString());
      if (!computes) {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> d.round(1f), d.toString());
        assertTrue(e.getMessage().contains("F32, BF16, F16"), e.getMessage());
      }
    }
    assertTrue(DType.F64.isFloating() && DType.F8_E4M3.isFloating() && DType.F8_E8M0.isFloating());
    assertFalse(DType.C64.isFloating() || DType.U16.isFloating() || DType.BOOL.isFloating());
    assertEquals("F32, BF16, F16", DType.quantizableNames());
  }
}
