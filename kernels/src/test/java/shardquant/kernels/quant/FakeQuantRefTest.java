package shardquant.kernels.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.FakeQuantConfig.Granularity;
import shardquant.kernels.tensor.Tensor;

class FakeQuantRefTest {
  static FakeQuantConfig config(int bits, boolean unsigned, Granularity g, int group, MappingType m, ZeroPointDomain d) {
    return new FakeQuantConfig(bits, unsigned, g, group, m, DType.F32, DType.I32, d, null);
  }

  // ---- QAT, then convert: the real quantization reproduces the fake one

  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
  void convertedSymmetricGroupWeightDequantizesToTheFakeQuantForward(DType dtype) {
    Tensor w = AffineQuantRefTest.random(dtype, 24, 128, 11);
    FakeQuantRef.FakeQuantized fq = FakeQuantRef.forward(w,
        config(4, false, Granularity.PER_GROUP, 32, MappingType.SYMMETRIC, ZeroPointDomain.INT));
    AffineSpec convert = new AffineSpec(MappingType.SYMMETRIC, BlockSize.group(32), DType.I8, -8, 7,
        AffineSpec.defaultEps(dtype), DType.F32, DType.I32, ZeroPointDomain.INT);
    AffineQuantRef.Quantized real = AffineQuantRef.chooseAndQuantize(w, convert);
    assertTrue(real.qparams().scale().contentEquals(fq.qparams().scale()));
    assertTrue(real.qparams().zeroPoint().contentEquals(fq.qparams().zeroPoint()));
    assertTrue(AffineQuantRef.dequantize(real.q(), convert, real.qparams(), dtype).contentEquals(fq.y()));
  }

  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
  void convertedPerTokenActivationDequantizesToTheFakeQuantForward(DType dtype) {
    Tensor x = AffineQuantRefTest.random(dtype, 16, 96, 12);
    FakeQuantRef.FakeQuantized fq = FakeQuantRef.forward(x,
        config(8, false, Granularity.PER_TOKEN, 0, MappingType.ASYMMETRIC, ZeroPointDomain.INT));
    AffineSpec convert = new AffineSpec(MappingType.ASYMMETRIC, BlockSize.perRow(96), DType.I8, -128, 127,
        AffineSpec.defaultEps(dtype), DType.F32, DType.I32, ZeroPointDomain.INT);
    AffineQuantRef.Quantized real = AffineQuantRef.chooseAndQuantize(x, convert);
    assertTrue(real.qparams().scale().contentEquals(fq.qparams().scale()));
    assertTrue(AffineQuantRef.dequantize(real.q(), convert, real.qparams(), dtype).contentEquals(fq.y()));
  }

  @Test
  void perChannelScaleIsOneColumnPerRow() {
    Tensor w = AffineQuantRefTest.random(DType.F32, 8, 64, 13);
    FakeQuantRef.FakeQuantized fq = FakeQuantRef.forward(w,
        config(8, false, Granularity.PER_CHANNEL, 0, MappingType.SYMMETRIC, ZeroPointDomain.INT));
    assertArrayEquals(new long[] {8, 1}, fq.qparams().scale().shape()); // get_group_qparams_symmetric reshapes (N, -1)
    AffineSpec convert = new AffineSpec(MappingType.SYMMETRIC, BlockSize.perRow(64), DType.I8, -128, 127,
        AffineSpec.defaultEps(DType.F32), DType.F32, DType.I32, ZeroPointDomain.INT);
    AffineQuantRef.Quantized real = AffineQuantRef.chooseAndQuantize(w, convert);
    assertTrue(AffineQuantRef.dequantize(real.q(), convert, real.qparams(), DType.F32).contentEquals(fq.y()));
  }

  /**
   * torchao's IntxFakeQuantizer casts the tinygemm zero point (min + scale * 8) to zero_point_precision:
   * with int32 it is truncated toward zero. Converting with the quantizer's own qparams reproduces the
   * fake forward; converting with freshly chosen tinygemm qparams (untruncated zero) would not.
   */
  @Test
  void floatDomainZeroPointIsTruncatedAndConvertingWithItReproducesTheForward() {
    Tensor w = AffineQuantRefTest.random(DType.F32, 16, 64, 14);
    FakeQuantRef.FakeQuantized fq = FakeQuantRef.forward(w,
        config(4, true, Granularity.PER_GROUP, 32, MappingType.ASYMMETRIC, ZeroPointDomain.FLOAT));
    AffineSpec tinygemm = new AffineSpec(MappingType.ASYMMETRIC, BlockSize.group(32), DType.I32, 0, 15,
        FakeQuantRef.GROUPWISE_AFFINE_EPS, DType.F32, DType.F32, ZeroPointDomain.FLOAT);
    QParams fresh = AffineQuantRef.chooseQParams(w, tinygemm);
    float[] zero = fresh.zeroPoint().toFloats();
    int[] held = fq.qparams().zeroPoint().toInts();
    for (int b = 0; b < zero.length; b++) {
      assertEquals((int) zero[b], held[b], "block " + b);
    }
    assertTrue(fresh.scale().contentEquals(fq.qparams().scale()));

    AffineSpec convert = new AffineSpec(MappingType.ASYMMETRIC, BlockSize.group(32), DType.U8, 0, 15,
        FakeQuantRef.GROUPWISE_AFFINE_EPS, DType.F32, DType.I32, ZeroPointDomain.FLOAT);
    Tensor q = AffineQuantRef.quantize(w, convert, fq.qparams());
    assertTrue(AffineQuantRef.dequantize(q, convert, fq.qparams(), DType.F32).contentEquals(fq.y()));
  }

  // ---- backward

  @Test
  void gradientIsZeroWhereTheClampClippedAndPassesThroughElsewhere() {
    // Symmetric int4: scale = 3 / 7.5, so 3 rounds to code 8 (7.5, half to even) and is clipped to 7.
    Tensor x = AffineQuantRefTest.tensor(DType.F32, 1, 3f, -3f, 0.5f, 0f);
    FakeQuantConfig sym = new FakeQuantConfig(4, false, Granularity.PER_CHANNEL, 0, MappingType.SYMMETRIC,
        DType.F32, DType.I32, ZeroPointDomain.INT, null);
    FakeQuantRef.FakeQuantized fq = FakeQuantRef.forward(x, sym);
    float s = 3f / 7.5f;
    assertArrayEquals(new float[] {7 * s, -8 * s, 1 * s, 0f}, fq.y().toFloats());
    Tensor grad = fq.backward(AffineQuantRefTest.tensor(DType.F32, 1, 1f, 2f, 3f, -4f));
    float r = 1f / s;
    assertArrayEquals(new float[] {0f, (2f * s) * r, (3f * s) * r, (-4f * s) * r}, grad.toFloats());

    // FLOAT domain: the chain divides by scale instead of multiplying by its reciprocal.
    FakeQuantConfig tinygemm = new FakeQuantConfig(4, true, Granularity.PER_CHANNEL, 0, MappingType.ASYMMETRIC,
        DType.F32, DType.F32, ZeroPointDomain.FLOAT, null);
    FakeQuantRef.FakeQuantized ft = FakeQuantRef.forward(x, tinygemm);
    float st = ft.qparams().scale().getFloat(0);
    Tensor gt = ft.backward(AffineQuantRefTest.tensor(DType.F32, 1, 1f, 2f, 3f, -4f));
    assertEquals((1f * st) / st, gt.getFloat(0));
    assertEquals((-4f * st) / st, gt.getFloat(3));
  }

  @Test
  void allZeroGroupGetsTheSmallestNormalScaleAndAFullGradient() {
    Tensor x = Tensor.fromFloats(DType.F32, new long[] {1, 32}, new float[32]);
    FakeQuantRef.FakeQuantized fq = FakeQuantRef.forward(x,
        config(4, false, Granularity.PER_GROUP, 32, MappingType.SYMMETRIC, ZeroPointDomain.INT));
    assertEquals(0x1p-126f, fq.qparams().scale().getFloat(0));
    assertArrayEquals(new float[32], fq.y().toFloats());
    float[] ones = new float[32];
    java.util.Arrays.fill(ones, 1f);
    assertArrayEquals(ones, fq.backward(Tensor.fromFloats(DType.F32, new long[] {1, 32}, ones)).toFloats());
  }

  // ---- argument errors

  @Test
  void argumentErrorsNameTheActualValues() {
    assertMessage("1 to 8 bit codes, got 9", () -> config(9, false, Granularity.PER_GROUP, 32, MappingType.SYMMETRIC, ZeroPointDomain.INT));
    assertMessage("group size must be at least 2 (torchao asserts group_size > 1), got 1",
        () -> config(4, false, Granularity.PER_GROUP, 1, MappingType.SYMMETRIC, ZeroPointDomain.INT));
    assertMessage("symmetric per token is not supported yet (IntxFakeQuantizer), got SYMMETRIC",
        () -> config(8, false, Granularity.PER_TOKEN, 0, MappingType.SYMMETRIC, ZeroPointDomain.INT));
    assertMessage("not NONE", () -> config(4, false, Granularity.PER_GROUP, 32, MappingType.SYMMETRIC, ZeroPointDomain.NONE));
    assertMessage("does not apply SYMMETRIC_NO_CLIPPING_ERR",
        () -> config(4, false, Granularity.PER_GROUP, 32, MappingType.SYMMETRIC_NO_CLIPPING_ERR, ZeroPointDomain.INT));
    assertMessage("eps must be positive and finite or null, got -1.0", () -> new FakeQuantConfig(4, false,
        Granularity.PER_GROUP, 32, MappingType.SYMMETRIC, DType.F32, DType.I32, ZeroPointDomain.INT, -1.0));
    FakeQuantConfig g64 = config(4, false, Granularity.PER_GROUP, 64, MappingType.SYMMETRIC, ZeroPointDomain.INT);
    assertMessage("96 columns are not whole groups of 64", () -> FakeQuantRef.forward(AffineQuantRefTest.random(DType.F32, 2, 96, 1), g64));
    assertMessage("fake quantization takes a 2-D tensor, got float32[128]",
        () -> FakeQuantRef.forward(Tensor.fromFloats(DType.F32, new long[] {128}, new float[128]), g64));
    FakeQuantRef.FakeQuantized fq = FakeQuantRef.forward(AffineQuantRefTest.random(DType.F32, 2, 64, 1), g64);
    assertMessage("gradient float32[64, 2] does not match output float32[2, 64]",
        () -> fq.backward(Tensor.fromFloats(DType.F32, new long[] {64, 2}, new float[128])));
    assertMessage("gradient bfloat16[2, 64] does not match output float32[2, 64]",
        () -> fq.backward(Tensor.fromFloats(DType.BF16, new long[] {2, 64}, new float[128])));
  }

  private static void assertMessage(String expected, Executable call) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
    assertTrue(e.getMessage().contains(expected), "message '" + e.getMessage() + "' lacks '" + expected + "'");
  }
}
