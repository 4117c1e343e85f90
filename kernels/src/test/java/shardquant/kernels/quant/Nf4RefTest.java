package shardquant.kernels.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.tensor.Tensor;

class Nf4RefTest {
  private static final int G = Nf4Ref.SHARD_ALIGNMENT;

  /** Gaussian weights with the golden generator's edge rows: all zero, constant, and 0.5% outliers. */
  private static Tensor weights(DType d, long[] shape, long seed) {
    Random rnd = new Random(seed);
    float[] v = new float[Math.toIntExact(Tensor.numel(shape))];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) (rnd.nextGaussian() * 0.02 * (rnd.nextInt(200) == 0 ? 10 : 1));
    }
    int cols = Math.toIntExact(shape[shape.length - 1]);
    if (shape.length == 2 && shape[0] >= 3) {
      Arrays.fill(v, cols, 2 * cols, 0f);
      Arrays.fill(v, 2 * cols, 3 * cols, 0.037f);
    }
    return Tensor.fromFloats(d, shape, v);
  }

  private static Tensor constant(DType d, long[] shape, float value) {
    float[] v = new float[Math.toIntExact(Tensor.numel(shape))];
    Arrays.fill(v, value);
    return Tensor.fromFloats(d, shape, v);
  }

  private static float[] concat(float[] a, float[] b) {
    float[] c = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, c, a.length, b.length);
    return c;
  }

  static Stream<Arguments> shardings() {
    return Stream.of(
        Arguments.of(DType.BF16, new long[] {64, 1024}, new long[] {16, 48}),
        // 96 columns: blocks of 64 straddle rows, a group of 16384 elements is 512 rows.
        Arguments.of(DType.F32, new long[] {2048, 96}, new long[] {512, 1024, 512}),
        Arguments.of(DType.F16, new long[] {32, 2048}, new long[] {8, 8, 16}),
        Arguments.of(DType.F32, new long[] {128, 4096}, new long[] {4, 60, 64}),
        Arguments.of(DType.BF16, new long[] {3L * G}, new long[] {G, 2L * G}));
  }

  @ParameterizedTest
  @MethodSource("shardings")
  void rowShardsWithTheDriversMeanAreSlicesOfTheWholeTensor(DType d, long[] shape, long[] shardRows) {
    Tensor w = weights(d, shape, 7);
    QuantizedTensor whole = Nf4Ref.quantize(w);
    Tensor dqWhole = Nf4Ref.dequantize(whole);
    long perRow = w.numel() / shape[0];

    // Pass 1 on every shard, then the driver's mean over the concatenated absmax values.
    float[] absmax = new float[0];
    long row = 0;
    for (long rows : shardRows) {
      absmax = concat(absmax, Nf4Ref.blockAbsmax(w.rowSlice(row, row + rows)));
      row += rows;
    }
    float mean = Nf4Ref.scalerMean(d, absmax);
    assertEquals(Float.floatToRawIntBits(Nf4Ref.scalerMean(whole)), Float.floatToRawIntBits(mean));

    row = 0;
    for (long rows : shardRows) {
      long from = row * perRow;
      long to = (row + rows) * perRow;
      QuantizedTensor part = Nf4Ref.quantize(w.rowSlice(row, row + rows), mean);
      String where = "rows [" + row + ", " + (row + rows) + ")";
      assertTrue(part.part("quantized_data").contentEquals(
          whole.part("quantized_data").rowSlice(from / 2, to / 2)), where);
      assertTrue(part.part("quantized_scalers").contentEquals(
          whole.part("quantized_scalers").rowSlice(from / Nf4Ref.BLOCK_SIZE, to / Nf4Ref.BLOCK_SIZE)), where);
      assertTrue(part.part("quantization_factor").contentEquals(
          whole.part("quantization_factor").rowSlice(from / G, to / G)), where);
      assertTrue(Nf4Ref.dequantize(part).contentEquals(dqWhole.rowSlice(row, row + rows)), where);
      row += rows;
    }
  }

  static Stream<Arguments> goldenShardings() {
    return Stream.of(
        Arguments.of("nf4_bfloat16_128x512.safetensors", new long[] {32, 96}),
        Arguments.of("nf4_float32_128x512.safetensors", new long[] {96, 32}),
        Arguments.of("nf4_bfloat16_256x1024.safetensors", new long[] {16, 48, 64, 128}),
        Arguments.of("nf4_float32_256x1024.safetensors", new long[] {128, 16, 16, 96}));
  }

  /** The same property against torchao's own output: each shard's parts are slices of the golden parts. */
  @ParameterizedTest
  @MethodSource("goldenShardings")
  void rowShardsOfGoldenWeightsGiveSlicesOfTorchaosParts(String file, long[] shardRows) throws IOException {
    try (SafetensorsFile golden = SafetensorsFile.open(GoldenFiles.dir("torchao-0.19").resolve(file))) {
      Tensor w = golden.read("w");
      float mean = golden.read("scaler_mean").getFloat(0);
      long perRow = w.cols();
      float[] absmax = new float[0];
      long row = 0;
      for (long rows : shardRows) {
        absmax = concat(absmax, Nf4Ref.blockAbsmax(w.rowSlice(row, row + rows)));
        row += rows;
      }
      assertEquals(w.rows(), row);
      assertEquals(Float.floatToRawIntBits(mean), Float.floatToRawIntBits(Nf4Ref.scalerMean(w.dtype(), absmax)));
      row = 0;
      for (long rows : shardRows) {
        long from = row * perRow;
        long to = (row + rows) * perRow;
        QuantizedTensor part = Nf4Ref.quantize(w.rowSlice(row, row + rows), mean);
        String where = file + " rows [" + row + ", " + (row + rows) + ")";
        assertTrue(part.part("quantized_data").contentEquals(
            golden.read("quantized_data").rowSlice(from / 2, to / 2)), where);
        assertTrue(part.part("quantized_scalers").contentEquals(
            golden.read("quantized_scalers").rowSlice(from / Nf4Ref.BLOCK_SIZE, to / Nf4Ref.BLOCK_SIZE)), where);
        Tensor factors = golden.read("quantization_factor");
        assertTrue(part.part("quantization_factor").contentEquals(factors.rowSlice(from / G, to / G)), where);
        assertTrue(Nf4Ref.dequantize(part).contentEquals(golden.read("dq").rowSlice(row, row + rows)), where);
        row += rows;
      }
    }
  }

  @Test
  void theMeanNeedsTheAbsmaxValuesNotJustTheirSum() throws IOException {
    try (SafetensorsFile golden =
        SafetensorsFile.open(GoldenFiles.dir("torchao-0.19").resolve("nf4_float32_128x512.safetensors"))) {
      float[] absmax = Nf4Ref.blockAbsmax(golden.read("w"));
      float torchao = golden.read("scaler_mean").getFloat(0);
      assertEquals(torchao, Nf4Ref.scalerMean(DType.F32, absmax));
      // A driver adding shard totals, even in double, lands one float32 ulp away from PyTorch's cascade.
      double total = 0;
      for (float a : absmax) {
        total += a;
      }
      assertEquals(Math.ulp(torchao), Math.abs((float) total / absmax.length - torchao));
    }
  }

  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
  void roundTripErrorIsHalfTheWidestTableGapPlusTheScalerError(DType d) {
    long[] shape = {48, 1024};
    Tensor w = weights(d, shape, 11);
    QuantizedTensor q = Nf4Ref.quantize(w);
    assertArrayEquals(shape, q.shape());
    Tensor dq = Nf4Ref.dequantize(q);
    assertEquals(d, dq.dtype());
    assertArrayEquals(shape, dq.shape());
    float[] absmax = Nf4Ref.blockAbsmax(w);
    float[] spread = new float[absmax.length / Nf4Ref.SCALER_BLOCK_SIZE]; // largest |absmax - mean|: the int8 range
    for (int b = 0; b < absmax.length; b++) {
      int sb = b / Nf4Ref.SCALER_BLOCK_SIZE;
      spread[sb] = Math.max(spread[sb], Math.abs(absmax[b] - Nf4Ref.scalerMean(q)));
    }
    for (int i = 0; i < w.numel(); i++) {
      int b = i / Nf4Ref.BLOCK_SIZE;
      int sb = b / Nf4Ref.SCALER_BLOCK_SIZE;
      float s = absmax[b];
      if (s == 0) {
        continue; // the zero row: see zeroBlockDequantizesToMinusItsScaler
      }
      float dequantizedScaler =
          q.part("quantized_scalers").getInt(b) / q.part("quantization_factor").getFloat(sb) + Nf4Ref.scalerMean(q);
      float scalerError = Math.abs(dequantizedScaler - s);
      // One int8 step is spread / 128; the dtype roundings add a few ulps of s.
      assertTrue(scalerError <= spread[sb] / 128 + 0x1p-7f * s,
          "block " + b + " scaler " + s + " -> " + dequantizedScaler);
      // The nearest table entry is at most half the widest gap (-1.0 to -0.6962), 0.1519, away.
      float err = Math.abs(dq.getFloat(i) - w.getFloat(i));
      assertTrue(err <= 0.1519f * s + scalerError + 0x1p-7f * s,
          "element " + i + ": " + w.getFloat(i) + " -> " + dq.getFloat(i) + ", absmax " + s);
    }
  }

  @Test
  void scalingByAPowerOfTwoScalesTheFactorsAndTheResultOnly() {
    for (DType d : new DType[] {DType.F32, DType.BF16}) {
      Tensor w = weights(d, new long[] {32, 1024}, 5);
      QuantizedTensor q = Nf4Ref.quantize(w);
      for (float scale : new float[] {0x1p-60f, 0x1p60f}) {
        float[] v = w.toFloats();
        for (int i = 0; i < v.length; i++) {
          v[i] *= scale;
        }
        QuantizedTensor scaled = Nf4Ref.quantize(Tensor.fromFloats(d, w.shape(), v));
        assertEquals(Nf4Ref.scalerMean(q) * scale, Nf4Ref.scalerMean(scaled));
        assertTrue(q.part("quantized_data").contentEquals(scaled.part("quantized_data")), d + " x" + scale);
        assertTrue(q.part("quantized_scalers").contentEquals(scaled.part("quantized_scalers")), d + " x" + scale);
        float[] f = q.part("quantization_factor").toFloats();
        float[] fs = scaled.part("quantization_factor").toFloats();
        for (int s = 0; s < f.length; s++) {
          assertEquals(f[s] / scale, fs[s]);
        }
        float[] dq = Nf4Ref.dequantize(q).toFloats();
        float[] dqs = Nf4Ref.dequantize(scaled).toFloats();
        for (int i = 0; i < dq.length; i++) {
          assertEquals(dq[i] * scale, dqs[i]);
        }
      }
    }
  }

  @Test
  void zeroBlockDequantizesToMinusItsScaler() {
    DType d = DType.BF16;
    float[] v = weights(d, new long[] {G}, 3).toFloats();
    Arrays.fill(v, 3 * 64, 4 * 64, 0f);
    QuantizedTensor q = Nf4Ref.quantize(Tensor.fromFloats(d, new long[] {G}, v));
    // 0 / 0 is NaN, and min(dim) gives NaN index 0: table entry -1.0.
    for (int j = 3 * 32; j < 4 * 32; j++) {
      assertEquals(0, q.part("quantized_data").getInt(j));
    }
    float scaler = d.round(d.round(q.part("quantized_scalers").getInt(3) / q.part("quantization_factor").getFloat(0))
        + Nf4Ref.scalerMean(q));
    Tensor dq = Nf4Ref.dequantize(q);
    for (int i = 3 * 64; i < 4 * 64; i++) {
      assertEquals(-scaler, dq.getFloat(i));
    }
  }

  @Test
  void allZeroTensorHasAnInfiniteFactorAndDequantizesToNegativeZero() {
    QuantizedTensor q = Nf4Ref.quantize(constant(DType.BF16, new long[] {64, 512}, 0f));
    assertEquals(0f, Nf4Ref.scalerMean(q));
    float inf = Float.POSITIVE_INFINITY;
    assertArrayEquals(new float[] {inf, inf}, q.part("quantization_factor").toFloats());
    assertArrayEquals(new int[512], q.part("quantized_scalers").toInts());
    assertArrayEquals(new int[G], q.part("quantized_data").toInts());
    // -1.0 * (0 / inf + 0)
    for (float x : Nf4Ref.dequantize(q).toFloats()) {
      assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(x));
    }
  }

  @Test
  void constantTensorRoundTripsExactly() {
    Tensor w = constant(DType.BF16, new long[] {64, 256}, 0.375f);
    QuantizedTensor q = Nf4Ref.quantize(w);
    assertEquals(0.375f, Nf4Ref.scalerMean(q));
    assertEquals(Float.POSITIVE_INFINITY, q.part("quantization_factor").getFloat(0));
    for (int b : q.part("quantized_data").toInts()) {
      assertEquals(0xFF, b);
    }
    assertTrue(Nf4Ref.dequantize(q).contentEquals(w));
  }

  @Test
  void allNegativeWeightsUseTheNegativeHalfOfTheTable() {
    float[] v = weights(DType.F32, new long[] {G}, 9).toFloats();
    for (int i = 0; i < v.length; i++) {
      v[i] = -Math.abs(v[i]) - 1e-3f;
    }
    QuantizedTensor q = Nf4Ref.quantize(Tensor.fromFloats(DType.F32, new long[] {G}, v));
    int[] bytes = q.part("quantized_data").toInts();
    for (int b = 0; b < G / 64; b++) {
      int min = 0;
      for (int i = 1; i < 64; i++) {
        min = v[b * 64 + i] < v[b * 64 + min] ? i : min;
      }
      int at = b * 64 + min;
      assertEquals(0, (bytes[at / 2] >> (at % 2 == 0 ? 4 : 0)) & 0xF, "block " + b + "'s most negative element");
    }
    for (int x : bytes) {
      assertTrue((x >> 4) <= 7 && (x & 0xF) <= 7, "code above 0.0 in byte " + x);
    }
    for (float x : Nf4Ref.dequantize(q).toFloats()) {
      assertTrue(x <= 0, "dequantized " + x);
    }
  }

  @Test
  void tieBetweenTwoTableEntriesTakesTheFirst() {
    // bf16 table entries 7 and 8 are 0.0 and 163/2048; 163/4096 is exactly between them.
    float[] v = new float[G];
    v[0] = 1f;
    v[1] = 163f / 4096;
    QuantizedTensor q = Nf4Ref.quantize(Tensor.fromFloats(DType.BF16, new long[] {G}, v));
    assertEquals(0.0f, Nf4Ref.table(DType.BF16)[7]);
    assertEquals(163f / 2048, Nf4Ref.table(DType.BF16)[8]);
    assertEquals(0xF7, q.part("quantized_data").getInt(0));
  }

  @Test
  void tableIsTorchaosRoundedIntoTheDtype() {
    float[] bf16 = Nf4Ref.table(DType.BF16);
    assertEquals(-0.6953125f, bf16[1]);
    assertEquals(0.72265625f, bf16[14]);
    assertEquals((float) 0.0796, Nf4Ref.table(DType.F32)[8]);
  }

  @Test
  void nonFiniteWeightsAreRefusedWithTheirIndex() {
    for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
      float[] v = new float[G];
      v[70] = bad;
      Tensor w = Tensor.fromFloats(DType.F32, new long[] {G}, v);
      assertMessage(() -> Nf4Ref.blockAbsmax(w), bad + " at flat element 70 (block 1)");
      assertMessage(() -> Nf4Ref.quantize(w, 0.5f), bad + " at flat element 70 (block 1)");
    }
  }

  @Test
  void absmaxSumPastFloatRangeIsRefused() {
    Tensor w = constant(DType.F32, new long[] {G}, 3e38f);
    assertMessage(() -> Nf4Ref.quantize(w), "256 block absmax values sum past float32's range");
  }

  @Test
  void badShapesAndDtypesNameTheirValues() {
    assertMessage(() -> Nf4Ref.blockAbsmax(Tensor.allocate(DType.BF16, 3, 100)),
        "shape [3, 100] has 300 elements (300 % 64 = 44)");
    assertMessage(() -> Nf4Ref.quantize(Tensor.allocate(DType.F32, 64, 100)),
        "multiple of 64 * 256 = 16384 (blocks of 64 elements, 256 blocks per quantization factor); shape [64, 100] has "
            + "6400 elements (6400 % 16384 = 6400)");
    assertMessage(() -> Nf4Ref.quantize(Tensor.allocate(DType.F32, 64, 100), 0.5f), "6400 % 16384 = 6400");
    assertMessage(() -> Nf4Ref.quantize(Tensor.allocate(DType.F32, 0, 64)), "shape [0, 64] has 0 elements");
    assertMessage(() -> Nf4Ref.quantize(Tensor.allocate(DType.F32, 2, 64, 128)), "got shape [2, 64, 128]");
    assertMessage(() -> Nf4Ref.quantize(Tensor.allocate(DType.I8, 64, 256)), "got int8");
    assertMessage(() -> Nf4Ref.scalerMean(DType.F32, new float[100]),
        "multiple of 256 of them (one per block of 64); got 100");
    assertMessage(() -> Nf4Ref.scalerMean(DType.F32, new float[] {-1f}), "got 1");
    float[] negative = new float[256];
    negative[5] = -1f;
    assertMessage(() -> Nf4Ref.scalerMean(DType.F32, negative), "block absmax 5 is -1.0");
    Tensor w = Tensor.allocate(DType.BF16, 64, 256);
    assertMessage(() -> Nf4Ref.quantize(w, 0.1f), "finite bfloat16 value as Nf4Ref.scalerMean returns it, got 0.1");
    assertMessage(() -> Nf4Ref.quantize(w, Float.NaN), "got NaN");
  }

  @Test
  void partsMustFitTheShape() {
    QuantizedTensor q = Nf4Ref.quantize(weights(DType.BF16, new long[] {64, 256}, 1));
    QuantConfig nf4 = QuantConfig.of(Recipe.NF4);
    assertMessage(() -> QuantizedTensor.of(nf4, new long[] {64, 256}, DType.BF16,
        replaced(q, "quantized_data", q.part("quantized_scalers"))),
        "quantized_data must be uint8[8192], got int8[256]");
    assertMessage(() -> QuantizedTensor.of(nf4, new long[] {128, 256}, DType.BF16, q.parts()),
        "quantized_data must be uint8[16384], got uint8[8192]");
    // A float32 mean, so that the first part found wrong is the factor.
    Tensor f32Mean = Tensor.fromFloats(DType.F32, new long[0], new float[] {Nf4Ref.scalerMean(q)});
    assertMessage(() -> QuantizedTensor.of(nf4, new long[] {64, 256}, DType.F32, replaced(q, "scaler_mean", f32Mean)),
        "quantization_factor must be float32[1], got bfloat16[1]");
  }

  private static Map<String, Tensor> replaced(QuantizedTensor q, String name, Tensor part) {
    Map<String, Tensor> parts = new LinkedHashMap<>(q.parts());
    parts.put(name, part);
    return parts;
  }

  private static void assertMessage(Executable call, String fragment) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
    assertTrue(e.getMessage().contains(fragment), "message '" + e.getMessage() + "' lacks '" + fragment + "'");
  }
}
