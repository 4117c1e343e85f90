package shardquant.kernels.backend.simd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.backend.reference.ReferenceBackend;
import shardquant.kernels.dtype.Bf16;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.dtype.F16;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.Nf4Ref;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** {@link SimdNf4} against {@link Nf4Ref} / the nf4 recipe: every part's bytes and the verification sums. */
class SimdNf4Test {
  private static final QuantConfig NF4 = QuantConfig.of(Recipe.NF4);
  private static final int G = Nf4Ref.SHARD_ALIGNMENT;
  private static final SimdBackend SIMD = new SimdBackend();

  // ---- the code search: thresholds against Nf4Ref.code

  private static int kernelCode(float q, float[] thresholds) {
    int code = 0;
    for (float c : thresholds) {
      code += q >= c ? 1 : 0;
    }
    return code;
  }

  /**
   * For bf16 and f16 the reference code of a float32 quotient depends only on its rounding to the
   * dtype, a monotone map; so the kernel's threshold count is exact for every float32 quotient when the
   * reference code is non-decreasing over every dtype value in [-1, 1] (checked here, all of them) and
   * each threshold is where the code steps (checked below).
   */
  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"BF16", "F16"})
  void theReferenceCodeStepsUpOverEveryHalfValue(DType d) {
    float[] thresholds = Nf4Ref.codeThresholds(d);
    float[] values = new float[1 << 16];
    int n = 0;
    for (int h = 0; h < 1 << 16; h++) {
      float v = d == DType.BF16 ? Bf16.toFloat((short) h) : F16.toFloat((short) h);
      if (Math.abs(v) <= 1) {
        values[n++] = v;
      }
    }
    values = Arrays.copyOf(values, n);
    Arrays.sort(values); // -0.0 before 0.0
    int previous = 0;
    for (float q : values) {
      int code = Nf4Ref.code(q, d);
      assertTrue(code >= previous, d + " code falls at " + q);
      assertEquals(code, kernelCode(q, thresholds), d + " quotient " + q);
      previous = code;
    }
    assertTrue(n > 30_000, "checked " + n);
    assertEquals(15, previous);
  }

  /** Each threshold is exactly where the reference code steps past it, in every dtype. */
  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
  void eachThresholdIsWhereTheReferenceCodeSteps(DType d) {
    float[] thresholds = Nf4Ref.codeThresholds(d);
    for (int i = 1; i < 16; i++) {
      float c = thresholds[i - 1];
      assertTrue(Nf4Ref.code(c, d) >= i, d + " c_" + i + " = " + c);
      assertTrue(Nf4Ref.code(Math.nextDown(c), d) < i, d + " below c_" + i + " = " + c);
      if (i > 1) {
        assertTrue(thresholds[i - 2] < c, d + " thresholds not increasing at " + i);
      }
    }
    assertEquals(0, kernelCode(Float.NaN, thresholds), "a zero block's 0 / 0");
  }

  /**
   * Float32 quotients are too many to try all in a unit test: every quotient within 4096 ulps of each
   * table entry, each midpoint and each threshold (where ties and steps live), and a million random ones.
   */
  @Test
  void float32CodesAroundEveryEntryMidpointAndThreshold() {
    float[] thresholds = Nf4Ref.codeThresholds(DType.F32);
    float[] table = Nf4Ref.table(DType.F32);
    List<Float> centres = new ArrayList<>();
    for (int i = 0; i < 16; i++) {
      centres.add(table[i]);
      if (i > 0) {
        centres.add((table[i - 1] + table[i]) / 2);
        centres.add(thresholds[i - 1]);
      }
    }
    for (float centre : centres) {
      int key = Nf4Ref.orderKey(centre);
      for (int k = key - 4096; k <= key + 4096; k++) {
        float q = Nf4Ref.fromOrderKey(k);
        if (Math.abs(q) <= 1) {
          assertEquals(Nf4Ref.code(q, DType.F32), kernelCode(q, thresholds), "quotient " + q);
        }
      }
    }
    Random r = new Random(5);
    for (int n = 0; n < 1_000_000; n++) {
      float q = (float) (r.nextDouble() * 2 - 1);
      assertEquals(Nf4Ref.code(q, DType.F32), kernelCode(q, thresholds), "quotient " + q);
    }
  }

  // ---- the kernels against the reference backend

  private static void assertSameAsReference(Tensor w, float mean, String what) {
    GlobalStats global = new GlobalStats(mean);
    QuantStats wantStats = new QuantStats();
    QuantizedTensor want = ReferenceBackend.INSTANCE.quantize(w, NF4, global, wantStats);
    for (Tensor input : new Tensor[] {w, direct(w)}) {
      QuantStats gotStats = new QuantStats();
      QuantizedTensor got = SIMD.quantize(input, NF4, global, gotStats);
      assertEquals(List.copyOf(want.parts().keySet()), List.copyOf(got.parts().keySet()), what);
      want.parts().forEach((name, t) -> {
        Tensor g = got.part(name);
        assertEquals(t.dtype(), g.dtype(), what + " " + name);
        assertArrayEquals(t.shape(), g.shape(), what + " " + name);
        assertTrue(t.bytes().equals(g.bytes()), () -> what + " " + name + ": first differing byte "
            + t.bytes().mismatch(g.bytes()));
      });
      assertEquals(wantStats, gotStats, what);
      assertEquals(wantStats.nonFinite(), gotStats.nonFinite(), what);
    }
  }

  private static void assertSameAbsmax(Tensor w, String what) {
    float[] want = Nf4Ref.blockAbsmax(w);
    assertArrayEquals(want, SIMD.firstPass(NF4, w), what);
    assertArrayEquals(want, SIMD.firstPass(NF4, direct(w)), what + " (direct buffer)");
  }

  /** The same tensor on a direct buffer. */
  private static Tensor direct(Tensor t) {
    ByteBuffer b = ByteBuffer.allocateDirect(Math.toIntExact(t.byteSize())).order(ByteOrder.LITTLE_ENDIAN);
    b.put(t.bytes()).flip();
    return Tensor.of(t.dtype(), t.shape(), b);
  }

  /** The whole tensor's first pass and mean, then the kernel. */
  private static void assertWholeTensor(Tensor w, String what) {
    assertSameAbsmax(w, what);
    assertSameAsReference(w, Nf4Ref.scalerMean(w.dtype(), Nf4Ref.blockAbsmax(w)), what);
  }

  static Stream<Arguments> shapes() {
    List<Arguments> a = new ArrayList<>();
    long[][] shapes = {
        {1, G}, {3, G}, {2, 65536}, {256, 64}, {512, 96}, {64, 1024}, {G, 1}, {G, 7}, {G / 8, 24}, {16, 3072}};
    for (DType d : new DType[] {DType.BF16, DType.F16, DType.F32}) {
      for (long[] s : shapes) {
        a.add(Arguments.of(d, s));
      }
    }
    return a.stream();
  }

  /** Gaussian weights, 0.5% outliers, and (where the rows are long enough) the golden generator's edge rows. */
  private static float[] weights(long[] shape, long seed) {
    Random r = new Random(seed);
    float[] v = new float[Math.toIntExact(Tensor.numel(shape))];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) (r.nextGaussian() * 0.02 * (r.nextInt(200) == 0 ? 10 : 1));
    }
    int cols = Math.toIntExact(shape[1]);
    int rows = Math.toIntExact(shape[0]);
    float[][] edges = {{0f}, {0.037f}, {-0.5f, -0.01f}, {1e-8f, -1e-8f}, {1e4f, -1e4f}, {40f * 0.02f, -40f * 0.02f}};
    for (int e = 0; e < edges.length && e + 1 < rows; e++) {
      for (int j = 0; j < cols; j++) {
        float[] choices = edges[e];
        v[(e + 1) * cols + j] = choices.length == 1 ? choices[0] : choices[0] + (choices[1] - choices[0]) * r.nextFloat();
      }
    }
    return v;
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("shapes")
  void randomShardsWithEdgeRows(DType d, long[] shape) {
    Tensor w = Tensor.fromFloats(d, shape, weights(shape, Arrays.hashCode(shape)));
    String what = d + Arrays.toString(shape);
    assertWholeTensor(w, what);
    // a row shard quantized with some other shard's mean, as the job's second pass does
    assertSameAsReference(w, d.round(0.0123f), what + " foreign mean");
    assertSameAsReference(w, 0f, what + " zero mean");
  }

  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
  void constantZeroAndTinyTensors(DType d) {
    for (float value : new float[] {0f, -0f, 0.037f, -3f, 1e-8f, 6e-8f}) {
      float[] v = new float[2 * G];
      Arrays.fill(v, value);
      assertWholeTensor(Tensor.fromFloats(d, new long[] {8, G / 4}, v), d + " all " + value);
    }
  }

  /** One weight at the dtype's largest finite value: huge mean, and in f16 an overflowing factor. */
  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
  void oneMaxFiniteWeight(DType d) {
    float max = switch (d) {
      case F32 -> Float.MAX_VALUE;
      case BF16 -> Float.intBitsToFloat(0x7f7f0000);
      default -> 65504f;
    };
    long[] shape = {4, G / 2};
    float[] v = weights(shape, 11);
    v[777] = -max;
    assertWholeTensor(Tensor.fromFloats(d, shape, v), d + " with -max");
    v[777] = 0;
    v[5] = max; // a second one and the absmax values sum past float32's range
    assertWholeTensor(Tensor.fromFloats(d, shape, v), d + " with max");
  }

  @ParameterizedTest
  @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
  void nonFiniteWeightsAreRefusedAsTheReferenceDoes(DType d) {
    for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
      float[] v = weights(new long[] {2, G}, 3);
      v[G + 100] = bad;
      Tensor w = Tensor.fromFloats(d, new long[] {2, G}, v);
      String want = assertThrows(IllegalArgumentException.class, () -> Nf4Ref.blockAbsmax(w)).getMessage();
      assertEquals(want, assertThrows(IllegalArgumentException.class, () -> SIMD.firstPass(NF4, w)).getMessage());
      QuantStats stats = new QuantStats();
      String wantQ = assertThrows(IllegalArgumentException.class,
          () -> ReferenceBackend.INSTANCE.quantize(w, NF4, new GlobalStats(0.01f), new QuantStats())).getMessage();
      assertEquals(wantQ, assertThrows(IllegalArgumentException.class,
          () -> SIMD.quantize(w, NF4, new GlobalStats(0.01f), stats)).getMessage());
      assertEquals(new QuantStats(), stats, "nothing added before the refusal");
    }
  }

  @Test
  void argumentsTheKernelDoesNotTakeGetTheReferencesAnswer() {
    Tensor w = Tensor.fromFloats(DType.BF16, new long[] {2, 64 * 3}, weights(new long[] {2, 64 * 3}, 1));
    assertSameAbsmax(w, "blocks but not groups");
    assertSameAbsmax(w.reshape(2 * 64 * 3), "1-D");
    Tensor odd = Tensor.fromFloats(DType.BF16, new long[] {1, 100}, new float[100]);
    assertEquals(assertThrows(IllegalArgumentException.class, () -> Nf4Ref.blockAbsmax(odd)).getMessage(),
        assertThrows(IllegalArgumentException.class, () -> SIMD.firstPass(NF4, odd)).getMessage());
    String want = assertThrows(IllegalArgumentException.class,
        () -> ReferenceBackend.INSTANCE.quantize(w, NF4, GlobalStats.NONE, new QuantStats())).getMessage();
    assertEquals(want, assertThrows(IllegalArgumentException.class,
        () -> SIMD.quantize(w, NF4, GlobalStats.NONE, new QuantStats())).getMessage());
  }

  // ---- golden files

  @Test
  void goldenNf4Cases() throws IOException {
    Path dir = GoldenFiles.dir("torchao-0.19");
    int cases = 0;
    try (Stream<Path> files = Files.list(dir)) {
      for (Path p : files.filter(f -> f.getFileName().toString().startsWith("nf4_")).sorted().toList()) {
        try (SafetensorsFile golden = SafetensorsFile.open(p)) {
          Tensor w = golden.read("w");
          float mean = golden.read("scaler_mean").getFloat(0);
          String what = p.getFileName().toString();
          assertSameAbsmax(w, what);
          assertEquals(mean, Nf4Ref.scalerMean(w.dtype(), SIMD.firstPass(NF4, w)), what);
          assertSameAsReference(w, mean, what);
          QuantizedTensor q = SIMD.quantize(w, NF4, new GlobalStats(mean), new QuantStats());
          for (String part : List.of("quantized_data", "quantized_scalers", "quantization_factor")) {
            assertTrue(golden.read(part).bytes().equals(q.part(part).bytes()), what + " " + part + " is torchao's");
          }
          cases++;
        }
      }
    }
    assertEquals(6, cases);
  }

  @Test
  void goldenFormatsInput() throws IOException {
    int quantized = 0;
    try (SafetensorsFile input = SafetensorsFile.open(GoldenFiles.dir("torchao-0.19-formats").resolve("input.safetensors"))) {
      for (TensorEntry e : input.entries()) {
        Tensor w = input.read(e.name());
        if (w.rank() == 2 && w.numel() % G == 0) {
          assertWholeTensor(w, e.name());
          quantized++;
        } else {
          assertSameAbsmax(w.reshape(w.numel()), e.name());
        }
      }
    }
    assertEquals(16, quantized);
  }
}
