package shardquant.kernels.layout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import java.util.function.IntUnaryOperator;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * Pack then unpack gives the codes back on random and edge inputs over many shapes, and packing agrees with
 * the transliterated PyTorch kernels ({@link PyTorchPackers}) beyond the golden shapes.
 */
class Int4LayoutRoundTripTest {
  private static final int[] ROWS_8 = {8, 16, 24, 40, 64, 72, 128, 136};
  private static final int[] ROWS_16 = {16, 32, 48, 64, 80, 112, 128, 144, 192, 208};

  private static int[] randomCodes(Random rnd, int count) {
    return IntStream.range(0, count).map(i -> rnd.nextInt(16)).toArray();
  }

  private static int[] codes(int count, IntUnaryOperator byIndex) {
    return IntStream.range(0, count).map(byIndex).toArray();
  }

  @ParameterizedTest
  @ValueSource(ints = {2, 4, 8})
  void tensorCoreTiledRoundTripsAndMatchesKernel(int ikt) {
    Random rnd = new Random(1000 + ikt);
    for (int n : ROWS_8) {
      for (int superTiles : new int[] {1, 2, 3, 5}) {
        int k = 16 * ikt * superTiles;
        int[] q = randomCodes(rnd, n * k);
        int[] words = TensorCoreTiledInt4Layout.pack(q, n, k, ikt);
        String at = "N=" + n + " K=" + k + " ikt=" + ikt;
        assertEquals(Tensor.numel(TensorCoreTiledInt4Layout.packedShape(n, k, ikt)), words.length, at);
        assertArrayEquals(PyTorchPackers.convertWeightToInt4packCuda(Uint4PairPacking.pack(q, n, k), n, k, ikt),
            words, at);
        assertArrayEquals(q, TensorCoreTiledInt4Layout.unpack(words, n, k, ikt), at);
      }
    }
  }

  @Test
  void tensorCoreTiledRowShardsConcatenate() {
    int n = 40;
    int k = 256;
    int[] q = randomCodes(new Random(7), n * k);
    int[] whole = TensorCoreTiledInt4Layout.pack(q, n, k, 8);
    int[] top = TensorCoreTiledInt4Layout.pack(Arrays.copyOfRange(q, 0, 16 * k), 16, k, 8);
    int[] bottom = TensorCoreTiledInt4Layout.pack(Arrays.copyOfRange(q, 16 * k, n * k), n - 16, k, 8);
    assertArrayEquals(whole, concat(top, bottom));
  }

  @Test
  void cpuRoundTripsAndMatchesKernel() {
    Random rnd = new Random(2000);
    for (int n : ROWS_16) {
      for (int k : new int[] {2, 6, 32, 130, 384}) {
        int[] q = randomCodes(rnd, n * k);
        byte[] packed = CpuInt4Layout.pack(q, n, k);
        String at = "N=" + n + " K=" + k;
        assertArrayEquals(PyTorchPackers.weightToInt4packAvx512(q, n, k), packed, at);
        assertArrayEquals(q, CpuInt4Layout.unpack(packed, n, k), at);
      }
    }
  }

  @Test
  void cpuRowShardsOf64RowsConcatenate() {
    int n = 144;
    int k = 24;
    int[] q = randomCodes(new Random(8), n * k);
    byte[] whole = CpuInt4Layout.pack(q, n, k);
    byte[] first = CpuInt4Layout.pack(Arrays.copyOfRange(q, 0, 64 * k), 64, k);
    byte[] rest = CpuInt4Layout.pack(Arrays.copyOfRange(q, 64 * k, n * k), n - 64, k);
    byte[] joined = Arrays.copyOf(first, whole.length);
    System.arraycopy(rest, 0, joined, first.length, rest.length);
    assertArrayEquals(whole, joined);
  }

  @Test
  void pairPackingPutsTheEvenColumnHigh() {
    assertArrayEquals(new byte[] {0x12, 0x34, (byte) 0xF0, 0x0F},
        Uint4PairPacking.pack(new int[] {1, 2, 3, 4, 15, 0, 0, 15}, 2, 4));
    Random rnd = new Random(3000);
    for (int n : new int[] {1, 3, 8, 17}) {
      for (int k : new int[] {2, 10, 64}) {
        int[] q = randomCodes(rnd, n * k);
        assertArrayEquals(q, Uint4PairPacking.unpack(Uint4PairPacking.pack(q, n, k), n, k), "N=" + n + " K=" + k);
      }
    }
  }

  @Test
  void edgeCodesPackToKnownWords() {
    int n = 80;
    int k = 256;
    int count = n * k;
    int[] zeros = new int[count];
    int[] fifteens = codes(count, i -> 15);
    // K is even, so alternating by flat index is alternating by column: even columns 0, odd columns 15.
    int[] alternating = codes(count, i -> i % 2 == 0 ? 0 : 15);

    for (int ikt : new int[] {2, 4, 8}) {
      assertWords(0, TensorCoreTiledInt4Layout.pack(zeros, n, k, ikt));
      assertWords(-1, TensorCoreTiledInt4Layout.pack(fifteens, n, k, ikt));
      // even columns fill the low half-word of each int32, odd columns the high one
      assertWords(0xFFFF0000, TensorCoreTiledInt4Layout.pack(alternating, n, k, ikt));
      for (int[] q : new int[][] {zeros, fifteens, alternating}) {
        assertArrayEquals(q, TensorCoreTiledInt4Layout.unpack(TensorCoreTiledInt4Layout.pack(q, n, k, ikt), n, k, ikt));
      }
    }

    assertBytes(0, Uint4PairPacking.pack(zeros, n, k));
    assertBytes(0xFF, Uint4PairPacking.pack(fifteens, n, k));
    assertBytes(0x0F, Uint4PairPacking.pack(alternating, n, k));

    assertBytes(0, CpuInt4Layout.pack(zeros, n, k));
    assertBytes(0xFF, CpuInt4Layout.pack(fifteens, n, k));
    // a CPU byte pairs two rows of one column: all of column k's bytes are 0x00 (k even) or 0xFF (k odd)
    byte[] cpu = CpuInt4Layout.pack(alternating, n, k);
    byte[] expected = new byte[cpu.length];
    int b = 0;
    for (int rows : new int[] {64, 16}) {
      for (int col = 0; col < k; col++) {
        for (int j = 0; j < rows / 2; j++) {
          expected[b++] = (byte) (col % 2 == 0 ? 0x00 : 0xFF);
        }
      }
    }
    assertArrayEquals(expected, cpu);
    for (int[] q : new int[][] {zeros, fifteens, alternating}) {
      assertArrayEquals(q, CpuInt4Layout.unpack(CpuInt4Layout.pack(q, n, k), n, k));
      assertArrayEquals(q, Uint4PairPacking.unpack(Uint4PairPacking.pack(q, n, k), n, k));
    }
  }

  @Test
  void scaleZeroRoundTripsOnRandomShapesAndEdgeValues() {
    Random rnd = new Random(4000);
    float[] edges = {0f, -0f, 1e-8f, -3.5f, 65504f, 3.0e38f, Float.MIN_NORMAL, Float.NaN, Float.POSITIVE_INFINITY};
    for (int n : new int[] {1, 8, 48, 129}) {
      for (int groups : new int[] {1, 3, 8}) {
        float[] s = new float[n * groups];
        float[] z = new float[n * groups];
        for (int i = 0; i < s.length; i++) {
          s[i] = i < edges.length ? edges[i] : (float) rnd.nextGaussian();
          z[i] = (float) rnd.nextGaussian() * 100;
        }
        Tensor scale = Tensor.fromFloats(DType.BF16, new long[] {n, groups}, s);
        Tensor zero = Tensor.fromFloats(DType.BF16, new long[] {n, groups}, z);
        Tensor sz = TinygemmScaleZero.pack(scale, zero);
        assertArrayEquals(new long[] {groups, n, 2}, sz.shape());
        for (int r = 0; r < n; r++) {
          for (int g = 0; g < groups; g++) {
            assertEquals(Float.floatToRawIntBits(scale.getFloat((long) r * groups + g)),
                Float.floatToRawIntBits(sz.getFloat(((long) g * n + r) * 2)));
            assertEquals(Float.floatToRawIntBits(zero.getFloat((long) r * groups + g)),
                Float.floatToRawIntBits(sz.getFloat(((long) g * n + r) * 2 + 1)));
          }
        }
        assertTrue(TinygemmScaleZero.scale(sz).contentEquals(scale), "scale N=" + n + " G=" + groups);
        assertTrue(TinygemmScaleZero.zero(sz).contentEquals(zero), "zero N=" + n + " G=" + groups);
      }
    }
  }

  private static void assertWords(int expected, int[] words) {
    for (int i = 0; i < words.length; i++) {
      assertEquals(expected, words[i], "word " + i);
    }
  }

  private static void assertBytes(int expected, byte[] bytes) {
    for (int i = 0; i < bytes.length; i++) {
      assertEquals(expected, bytes[i] & 0xFF, "byte " + i);
    }
  }

  private static int[] concat(int[] a, int[] b) {
    int[] out = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }
}
