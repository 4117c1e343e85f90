package shardquant.kernels.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
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
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.tensor.Tensor;

class AffineQuantRefTest {
  private static final double F32_EPS = Math.ulp(1.0f);

  static AffineSpec spec(MappingType mapping, BlockSize block, DType target, int qmin, int qmax, ZeroPointDomain domain,
      DType zeroDtype) {
    return new AffineSpec(mapping, block, target, qmin, qmax, F32_EPS, DType.F32, zeroDtype, domain);
  }

  static Tensor random(DType dtype, int rows, int cols, long seed) {
    Random rnd = new Random(seed);
    float[] v = new float[rows * cols];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) (rnd.nextGaussian() * (1 + (i / cols) % 3)) + (i / cols % 4 == 1 ? 0.7f : 0f);
    }
    return Tensor.fromFloats(dtype, new long[] {rows, cols}, v);
  }

  static Tensor tensor(DType dtype, int rows, float... v) {
    return Tensor.fromFloats(dtype, new long[] {rows, v.length / rows}, v);
  }

  static byte[] bytes(Tensor t) {
    ByteBuffer b = t.bytes();
    byte[] out = new byte[b.remaining()];
    b.get(out);
    return out;
  }

  static byte[] slice(Tensor t, int fromElement, int toElement) {
    int size = t.dtype().byteSize();
    return Arrays.copyOfRange(bytes(t), fromElement * size, toElement * size);
  }

  // ---- block shapes

  @Test
  void qparamShapeIsTorchaosReducedShape() {
    long[] shape = {64, 256};
    assertArrayEquals(new long[] {64}, BlockSize.perRow(256).qparamShape(shape));
    assertArrayEquals(new long[] {}, BlockSize.perTensor(64, 256).qparamShape(shape));
    assertArrayEquals(new long[] {64, 8}, BlockSize.group(32).qparamShape(shape));
    assertArrayEquals(new long[] {8, 4}, new BlockSize(8, 64).qparamShape(shape));
    assertArrayEquals(new long[] {8}, new BlockSize(8, 256).qparamShape(shape));
    assertArrayEquals(new long[] {8}, new BlockSize(64, 32).qparamShape(shape));
    assertArrayEquals(new long[] {64, 256}, new BlockSize(1, 1).qparamShape(shape));
    assertArrayEquals(new long[] {1}, BlockSize.perRow(256).qparamShape(new long[] {1, 256}));
  }

  // ---- row shards

  static Stream<Arguments> shardable() {
    List<Arguments> cases = new ArrayList<>();
    for (DType d : new DType[] {DType.F32, DType.BF16, DType.F16}) {
      cases.add(Arguments.of(d, spec(MappingType.SYMMETRIC, BlockSize.perRow(96), DType.I8, -128, 127, ZeroPointDomain.INT, DType.I32)));
      cases.add(Arguments.of(d, spec(MappingType.SYMMETRIC_NO_CLIPPING_ERR, BlockSize.group(32), DType.I8, -8, 7, ZeroPointDomain.INT, DType.I32)));
      cases.add(Arguments.of(d, spec(MappingType.ASYMMETRIC, new BlockSize(8, 32), DType.U8, 0, 255, ZeroPointDomain.INT, DType.I32)));
      cases.add(Arguments.of(d, spec(MappingType.ASYMMETRIC, BlockSize.group(16), DType.I32, 0, 15, ZeroPointDomain.FLOAT, DType.BF16)));
      cases.add(Arguments.of(d, spec(MappingType.SYMMETRIC, new BlockSize(4, 48), DType.I8, -127, 127, ZeroPointDomain.NONE, null)));
      cases.add(Arguments.of(d, AffineSpec.int8AsymmetricPerToken(96)));
    }
    return cases.stream();
  }

  @ParameterizedTest
  @MethodSource("shardable")
  void quantizingARowShardGivesThoseRowsOfTheWhole(DType dtype, AffineSpec spec) {
    Tensor w = random(dtype, 40, 96, 7);
    AffineQuantRef.Quantized whole = AffineQuantRef.chooseAndQuantize(w, spec);
    Tensor dqWhole = AffineQuantRef.dequantize(whole.q(), spec, whole.qparams(), dtype);
    int br = spec.block().rows();
    for (int[] range : new int[][] {{0, 8}, {8, 24}, {24, 40}, {16, 24}}) {
      if (range[0] % br != 0 || range[1] % br != 0) {
        continue;
      }
      Tensor shard = w.rowSlice(range[0], range[1]);
      AffineQuantRef.Quantized part = AffineQuantRef.chooseAndQuantize(shard, spec);
      assertTrue(part.q().contentEquals(whole.q().rowSlice(range[0], range[1])), "codes of rows " + Arrays.toString(range));
      // Blocks of grid rows [range[0] / br, range[1] / br), flat and row-major.
      long gridCols = spec.block().gridCols(w.shape());
      int first = Math.toIntExact(range[0] / br * gridCols);
      int last = Math.toIntExact(range[1] / br * gridCols);
      assertArrayEquals(slice(whole.qparams().scale(), first, last), bytes(part.qparams().scale()));
      if (spec.domain() != ZeroPointDomain.NONE) {
        assertArrayEquals(slice(whole.qparams().zeroPoint(), first, last), bytes(part.qparams().zeroPoint()));
      }
      Tensor dq = AffineQuantRef.dequantize(part.q(), spec, part.qparams(), dtype);
      assertTrue(dq.contentEquals(dqWhole.rowSlice(range[0], range[1])), "dequantized rows " + Arrays.toString(range));
    }
  }

  // ---- round trips

  @ParameterizedTest
  @MethodSource("shardable")
  void unclippedValuesComeBackWithinHalfAStep(DType dtype, AffineSpec spec) {
    for (int[] shape : new int[][] {{8, 96}, {16, 96}, {40, 96}}) {
      Tensor w = random(dtype, shape[0], shape[1], shape[0]);
      AffineQuantRef.Quantized qw = AffineQuantRef.chooseAndQuantize(w, spec);
      Tensor dq = AffineQuantRef.dequantize(qw.q(), spec, qw.qparams(), dtype);
      float[] scale = qw.qparams().scale().toFloats();
      for (int i = 0; i < w.numel(); i++) {
        int code = qw.q().getInt(i);
        if (code == spec.quantMin() || code == spec.quantMax()) {
          continue; // may have clipped
        }
        float s = scale[AffineQuantRef.blockOf(i, shape[1], w.shape(), spec.block())];
        // Half a step, plus the rounding of intermediates as large as the block's range (bf16 keeps 8 bits).
        double magnitude = Math.abs(w.getFloat(i)) + s * ((double) spec.quantMax() - spec.quantMin());
        double tolerance = s * 0.5 + magnitude * (dtype == DType.F32 ? 1e-6 : 1e-2);
        assertEquals(w.getFloat(i), dq.getFloat(i), tolerance, "element " + i + " code " + code);
      }
    }
  }

  // ---- golden tinygemm primitives (the lead's tinygemm_int4 kind builds on them)

  @Test
  void tinygemmPrimitivesMatchTheGoldenTinygemmInt4Cases() throws IOException {
    Path dir = GoldenFiles.dir("torchao-0.19");
    int checked = 0;
    try (Stream<Path> files = Files.list(dir)) {
      for (Path f : (Iterable<Path>) files.filter(p -> p.getFileName().toString().startsWith("tinygemm_int4_"))::iterator) {
        int group = Integer.parseInt(f.getFileName().toString().replaceAll(".*_g(\\d+)\\.safetensors", "$1"));
        try (SafetensorsFile st = SafetensorsFile.open(f)) {
          Tensor w = st.read("w");
          AffineSpec spec = AffineSpec.tinygemmInt4(group, w.dtype());
          AffineQuantRef.Quantized qw = AffineQuantRef.chooseAndQuantize(w, spec);
          assertTrue(qw.qparams().scale().contentEquals(st.read("scale")), f + " scale");
          assertTrue(qw.qparams().zeroPoint().contentEquals(st.read("zero")), f + " zero");
          assertTrue(qw.q().contentEquals(st.read("q")), f + " q");
          assertTrue(AffineQuantRef.dequantize(qw.q(), spec, qw.qparams(), w.dtype()).contentEquals(st.read("dq")), f + " dq");
          checked++;
        }
      }
    }
    assertEquals(4, checked);
  }

  @Test
  void int8PerTokenActivationQuantMatchesTheGoldenPerTokenCases() throws IOException {
    Path dir = GoldenFiles.dir("torchao-0.19");
    for (String size : new String[] {"64x256", "96x384", "128x1024"}) {
      try (SafetensorsFile st = SafetensorsFile.open(dir.resolve("affine_int8_asym_per_token_act_" + size + ".safetensors"))) {
        AffineQuantRef.Quantized qx = AffineQuantRef.int8AsymmetricPerToken(st.read("w"));
        assertTrue(qx.qparams().scale().contentEquals(st.read("scale")), size);
        assertTrue(qx.qparams().zeroPoint().contentEquals(st.read("zero_point")), size);
        assertTrue(qx.q().contentEquals(st.read("q")), size);
      }
    }
  }

  // ---- edge values

  @Test
  void allZeroBlockClampsScaleToEps() {
    Tensor w = tensor(DType.F32, 2, 0f, 0f, 0f, 0f, 1f, -2f, 3f, 4f);
    AffineSpec sym = spec(MappingType.SYMMETRIC, BlockSize.perRow(4), DType.I8, -8, 7, ZeroPointDomain.INT, DType.I32);
    QParams qp = AffineQuantRef.chooseQParams(w, sym);
    assertEquals((float) F32_EPS, qp.scale().getFloat(0));
    assertEquals(4f / 7.5f, qp.scale().getFloat(1));
    assertEquals(0, qp.zeroPoint().getInt(0));
    Tensor q = AffineQuantRef.quantize(w, sym, qp);
    assertArrayEquals(new int[] {0, 0, 0, 0, 2, -4, 6, 7}, q.toInts());

    AffineSpec asym = spec(MappingType.ASYMMETRIC, BlockSize.perRow(4), DType.U8, 0, 255, ZeroPointDomain.INT, DType.I32);
    QParams aq = AffineQuantRef.chooseQParams(w, asym);
    assertEquals((float) F32_EPS, aq.scale().getFloat(0));
    assertEquals(0, aq.zeroPoint().getInt(0)); // quant_min - round(0 / eps)
    Tensor dq = AffineQuantRef.dequantize(AffineQuantRef.quantize(w, asym, aq), asym, aq, DType.F32);
    assertArrayEquals(new float[] {0f, 0f, 0f, 0f}, Arrays.copyOf(dq.toFloats(), 4));

    // tinygemm: scale eps, zero = 0 + eps * 8, every code the midpoint... of (0 - (zero - 8 eps)) / eps = 0.
    AffineSpec tg = AffineSpec.tinygemmInt4(4, DType.BF16);
    Tensor wb = Tensor.fromFloats(DType.BF16, new long[] {1, 4}, new float[4]);
    AffineQuantRef.Quantized tq = AffineQuantRef.chooseAndQuantize(wb, tg);
    assertEquals(0x1p-126f, tq.qparams().scale().getFloat(0));
    assertEquals(0x1p-123f, tq.qparams().zeroPoint().getFloat(0));
    assertArrayEquals(new int[] {0, 0, 0, 0}, tq.q().toInts());
    assertArrayEquals(new float[4], AffineQuantRef.dequantize(tq.q(), tg, tq.qparams(), DType.BF16).toFloats());
  }

  @Test
  void constantNegativeTinyAndHugeBlocks() {
    AffineSpec asym = spec(MappingType.ASYMMETRIC, BlockSize.perRow(4), DType.I8, -128, 127, ZeroPointDomain.INT, DType.I32);
    Tensor w = tensor(DType.F32, 4,
        0.5f, 0.5f, 0.5f, 0.5f, // constant: range [0, 0.5]
        -3f, -1f, -2f, -0.5f, // all negative: range [-3, 0]
        1e-8f, -1e-8f, 1e-8f, 0f, // tiny: scale clamps to eps
        3e30f, -1e30f, 2e30f, 0f); // huge
    QParams qp = AffineQuantRef.chooseQParams(w, asym);
    Tensor q = AffineQuantRef.quantize(w, asym, qp);
    float[] s = qp.scale().toFloats();
    assertEquals(0.5f / 255f, s[0]);
    assertEquals(-128, qp.zeroPoint().getInt(0));
    assertArrayEquals(new int[] {127, 127, 127, 127}, Arrays.copyOfRange(q.toInts(), 0, 4));
    assertEquals(3f / 255f, s[1]);
    assertEquals(127, qp.zeroPoint().getInt(1)); // -128 - round(-3 / (3/255)) = 127
    assertEquals(-128, q.getInt(4));
    assertEquals((float) F32_EPS, s[2]);
    assertEquals(-128, qp.zeroPoint().getInt(2));
    assertArrayEquals(new int[] {-128, -128, -128, -128}, Arrays.copyOfRange(q.toInts(), 8, 12));
    assertEquals(4e30f / 255f, s[3]);
    assertEquals(-128 + 64, qp.zeroPoint().getInt(3)); // -128 - round(-1e30 / (4e30/255)) = -128 + 64
    assertEquals(127, q.getInt(12));
    assertEquals(-128, q.getInt(13));
    Tensor dq = AffineQuantRef.dequantize(q, asym, qp, DType.F32);
    assertEquals(3e30, dq.getFloat(12), s[3]);
    assertEquals(0f, dq.getFloat(15));
    assertEquals(-0.5f, dq.getFloat(7), s[1] / 2);

    // Tiny values survive with torchao's default eps (smallest normal) instead of float32 eps.
    AffineSpec smallEps = new AffineSpec(MappingType.SYMMETRIC, BlockSize.perRow(4), DType.I8, -128, 127,
        AffineSpec.defaultEps(DType.F32), DType.F32, DType.I32, ZeroPointDomain.INT);
    Tensor tiny = w.rowSlice(2, 3);
    assertArrayEquals(new int[] {127, -128, 127, 0}, AffineQuantRef.chooseAndQuantize(tiny, smallEps).q().toInts());
  }

  @Test
  void nonFiniteInputIsRefusedWithItsPosition() {
    AffineSpec sym = spec(MappingType.SYMMETRIC, BlockSize.perRow(4), DType.I8, -128, 127, ZeroPointDomain.INT, DType.I32);
    Tensor w = tensor(DType.F32, 2, 1f, 2f, 3f, 4f, 5f, Float.NaN, 7f, 8f);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> AffineQuantRef.chooseQParams(w, sym));
    assertTrue(e.getMessage().contains("NaN at flat index 5 (row 1, column 1)"), e.getMessage());
    Tensor inf = tensor(DType.BF16, 1, 1f, Float.NEGATIVE_INFINITY, 3f, 4f);
    e = assertThrows(IllegalArgumentException.class, () -> AffineQuantRef.chooseQParams(inf, sym));
    assertTrue(e.getMessage().contains("-Infinity at flat index 1"), e.getMessage());
  }

  // ---- argument errors

  @Test
  void argumentErrorsNameTheActualValues() {
    assertMessage("not made of whole 1 x 32 blocks", () -> AffineQuantRef.chooseQParams(random(DType.F32, 4, 48, 1),
        spec(MappingType.SYMMETRIC, BlockSize.group(32), DType.I8, -8, 7, ZeroPointDomain.INT, DType.I32)));
    assertMessage("[4, 48]", () -> AffineQuantRef.chooseQParams(random(DType.F32, 4, 48, 1),
        spec(MappingType.SYMMETRIC, BlockSize.group(32), DType.I8, -8, 7, ZeroPointDomain.INT, DType.I32)));
    assertMessage("quant range [0, 256] does not fit U8 [0, 255]", () ->
        spec(MappingType.ASYMMETRIC, BlockSize.group(32), DType.U8, 0, 256, ZeroPointDomain.INT, DType.I32));
    assertMessage("eps must be positive and finite, got 0.0", () -> new AffineSpec(MappingType.SYMMETRIC,
        BlockSize.group(32), DType.I8, -8, 7, 0.0, DType.F32, DType.I32, ZeroPointDomain.INT));
    assertMessage("needs ASYMMETRIC mapping, got SYMMETRIC", () ->
        spec(MappingType.SYMMETRIC, BlockSize.group(32), DType.I32, 0, 15, ZeroPointDomain.FLOAT, DType.BF16));
    assertMessage("zero points in [0, 255] do not fit I8", () ->
        spec(MappingType.ASYMMETRIC, BlockSize.group(32), DType.U8, 0, 255, ZeroPointDomain.INT, DType.I8));
    assertMessage("block size must be at least 1 x 1, got 0 x 32", () -> new BlockSize(0, 32));
    assertMessage("input dtype must be float32, bfloat16 or float16, got I32", () -> AffineQuantRef.chooseQParams(
        Tensor.fromInts(DType.I32, new long[] {1, 32}, new int[32]),
        spec(MappingType.SYMMETRIC, BlockSize.group(32), DType.I8, -8, 7, ZeroPointDomain.INT, DType.I32)));

    AffineSpec g32 = spec(MappingType.SYMMETRIC, BlockSize.group(32), DType.I8, -8, 7, ZeroPointDomain.INT, DType.I32);
    Tensor w = random(DType.F32, 4, 64, 2);
    QParams qp = AffineQuantRef.chooseQParams(w, g32);
    QParams wrong = new QParams(qp.scale().reshape(8), qp.zeroPoint().reshape(8));
    assertMessage("does not fit 16 blocks (1, 32) of shape [8, 64]",
        () -> AffineQuantRef.quantize(random(DType.F32, 8, 64, 3), g32, wrong));
    assertMessage("takes no zero point", () -> AffineQuantRef.quantize(w,
        spec(MappingType.SYMMETRIC, BlockSize.group(32), DType.I8, -8, 7, ZeroPointDomain.NONE, null), qp));
    assertMessage("codes are U8 but the spec's target dtype is I8", () -> AffineQuantRef.dequantize(
        Tensor.fromInts(DType.U8, new long[] {4, 64}, new int[256]), g32, qp, DType.F32));
    assertMessage("scale float32[4, 2] and zero point int32[4] differ in size",
        () -> new QParams(qp.scale(), Tensor.fromInts(DType.I32, new long[] {4}, new int[4])));
  }

  @Test
  void noneDomainHasNoZeroPoint() {
    AffineSpec none = spec(MappingType.SYMMETRIC, BlockSize.perRow(4), DType.I8, -127, 127, ZeroPointDomain.NONE, null);
    Tensor w = tensor(DType.F32, 1, -2.54f, 1f, 0f, 2.54f);
    AffineQuantRef.Quantized qw = AffineQuantRef.chooseAndQuantize(w, none);
    assertNull(qw.qparams().zeroPoint());
    assertArrayEquals(new int[] {-127, 50, 0, 127}, qw.q().toInts());
  }

  private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
    assertTrue(e.getMessage().contains(expected), "message '" + e.getMessage() + "' lacks '" + expected + "'");
  }
}
