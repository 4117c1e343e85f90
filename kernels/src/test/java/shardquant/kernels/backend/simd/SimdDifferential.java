package shardquant.kernels.backend.simd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.backend.reference.ReferenceBackend;
import shardquant.kernels.dtype.Bf16;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * Runs a SIMD kernel and the reference on the same rows and asserts equal parts (every byte) and equal
 * verification sums, with the input on a heap and on a direct buffer; plus the inputs the SIMD tests
 * share (the CUDA tests too): random shards, edge rows and the golden weights.
 */
public final class SimdDifferential {
  public static final SimdBackend SIMD = new SimdBackend();
  public static final DType[] FLOATS = {DType.F32, DType.BF16, DType.F16};

  private SimdDifferential() {}

  /** The SIMD backend equals the reference on {@code rows}, heap or direct. */
  static void assertSameAsReference(Tensor rows, QuantConfig c, String what) {
    assertEquals("cpu-simd", SIMD.nameFor(c.recipe()), c + " has a SIMD kernel");
    QuantStats want = new QuantStats();
    QuantizedTensor ref = ReferenceBackend.INSTANCE.quantize(rows, c, GlobalStats.NONE, want);
    for (boolean direct : new boolean[] {false, true}) {
      String where = c + " " + rows + " " + what + (direct ? " (direct buffer)" : " (heap buffer)");
      QuantStats got = new QuantStats();
      QuantizedTensor simd = SIMD.quantize(copy(rows, direct), c, GlobalStats.NONE, got);
      assertEquals(ref.parts().keySet(), simd.parts().keySet(), where);
      ref.parts().forEach((name, t) -> assertBytes(t, simd.part(name), where + " part " + name));
      assertEquals(want, got, where + " stats");
      assertEquals(want.nonFinite(), got.nonFinite(), where + " non-finite count");
    }
  }

  /** Both backends refuse {@code rows} with the same message, and the SIMD one leaves the stats alone. */
  static void assertSameRefusal(Tensor rows, QuantConfig c) {
    IllegalArgumentException want = assertThrows(IllegalArgumentException.class,
        () -> ReferenceBackend.INSTANCE.quantize(rows, c, GlobalStats.NONE, new QuantStats()));
    QuantStats stats = new QuantStats();
    IllegalArgumentException got = assertThrows(IllegalArgumentException.class,
        () -> SIMD.quantize(rows, c, GlobalStats.NONE, stats));
    assertEquals(want.getMessage(), got.getMessage());
    assertEquals(new QuantStats(), stats);
  }

  public static void assertBytes(Tensor want, Tensor got, String what) {
    assertEquals(want.dtype(), got.dtype(), what);
    assertEquals(Arrays.toString(want.shape()), Arrays.toString(got.shape()), what);
    ByteBuffer w = want.bytes();
    ByteBuffer g = got.bytes();
    int i = w.mismatch(g);
    if (i >= 0) {
      long element = i / want.dtype().byteSize();
      throw new AssertionError(what + ": first difference at flat index " + element + " (row "
          + element / Math.max(1, want.shape()[want.rank() - 1]) + "): want "
          + (want.dtype().isFloating() ? want.getFloat(element) : want.getInt(element)) + ", got "
          + (got.dtype().isFloating() ? got.getFloat(element) : got.getInt(element)));
    }
  }

  /** The same bytes on a heap or a direct buffer. */
  public static Tensor copy(Tensor t, boolean direct) {
    ByteBuffer src = t.bytes();
    ByteBuffer dst = direct ? ByteBuffer.allocateDirect(src.remaining()) : ByteBuffer.allocate(src.remaining());
    dst.order(ByteOrder.LITTLE_ENDIAN).put(src).flip();
    return Tensor.of(t.dtype(), t.shape(), dst);
  }

  /** Gaussian rows, each with its own spread over several decades. */
  public static Tensor random(DType d, int rows, int cols, Random r) {
    float[] v = new float[rows * cols];
    for (int i = 0; i < rows; i++) {
      double spread = Math.pow(10, r.nextInt(7) - 4);
      for (int j = 0; j < cols; j++) {
        v[i * cols + j] = (float) (r.nextGaussian() * spread);
      }
    }
    return Tensor.fromFloats(d, new long[] {rows, cols}, v);
  }

  /** Number of rows {@link #edgeRows} makes. */
  public static final int EDGE_KINDS = 15;

  /**
   * One row of each edge kind: zeros, a constant, negatives, +-tiny, +-huge, +-max-finite, 40x larger,
   * 0.5% outliers, signed zeros, rint ties for 4 and 8 bits, subnormals, values just around the eps
   * clamp, and a row that mixes all kinds every 8 elements (inside groups).
   */
  public static Tensor edgeRows(DType d, int cols, Random r) {
    float[] v = new float[EDGE_KINDS * cols];
    for (int kind = 0; kind < EDGE_KINDS; kind++) {
      for (int j = 0; j < cols; j++) {
        v[kind * cols + j] = edge(kind == EDGE_KINDS - 1 ? (j / 8) % (EDGE_KINDS - 1) : kind, d, j, cols, r);
      }
    }
    return Tensor.fromFloats(d, new long[] {EDGE_KINDS, cols}, v);
  }

  private static float edge(int kind, DType d, int j, int cols, Random r) {
    float sign = r.nextBoolean() ? 1 : -1;
    float maxFinite = switch (d) {
      case F16 -> 65504f;
      case BF16 -> Float.intBitsToFloat(0x7f7f0000);
      default -> Float.MAX_VALUE;
    };
    float smallestNormal = (float) shardquant.kernels.quant.AffineSpec.defaultEps(d);
    return switch (kind) {
      case 0 -> 0f;
      case 1 -> 0.37f;
      case 2 -> -(float) Math.abs(r.nextGaussian());
      case 3 -> sign * 1e-8f * (1 + r.nextFloat());
      case 4 -> sign * 1e4f * r.nextFloat();
      case 5 -> j % 3 == 0 ? sign * maxFinite : sign * maxFinite * r.nextFloat();
      case 6 -> (float) (r.nextGaussian() * 40);
      case 7 -> (float) (r.nextGaussian() * (r.nextInt(200) == 0 ? 100 : 1));
      case 8 -> j % 2 == 0 ? -0f : 0f;
      case 9 -> j == 0 ? 7.5f : (r.nextInt(31) - 15) * 0.5f; // 4 bits: scale 1, every code a tie
      case 10 -> j == 0 ? -127.5f : (r.nextInt(511) - 255) * 0.5f; // 8 bits: scale 1 (255 / 2 = 127.5)
      case 11 -> sign * smallestNormal * r.nextInt(4) / 8;
      case 12 -> sign * smallestNormal * (0.5f + r.nextFloat()) * 7.5f;
      case 13 -> j == cols - 1 ? 1e3f : (float) r.nextGaussian();
      default -> throw new IllegalArgumentException("edge kind " + kind);
    };
  }

  /** Every 2-D floating weight of the golden files: the cases' {@code w} and the formats model. */
  public static List<Golden> goldenWeights() throws IOException {
    List<Golden> out = new ArrayList<>();
    List<Path> files = new ArrayList<>();
    try (DirectoryStream<Path> dir = Files.newDirectoryStream(GoldenFiles.dir("torchao-0.19"), "*.safetensors")) {
      dir.forEach(files::add);
    }
    files.sort(null);
    files.add(GoldenFiles.dir("torchao-0.19-formats").resolve("input.safetensors"));
    for (Path p : files) {
      try (SafetensorsFile f = SafetensorsFile.open(p)) {
        for (TensorEntry e : f.entries()) {
          boolean weight = e.name().equals("w") || e.name().endsWith(".weight");
          if (weight && e.shape().length == 2 && e.dtype().isFloating()) {
            out.add(new Golden(p.getFileName() + ":" + e.name(), copy(f.read(e.name()), false)));
          }
        }
      }
    }
    return out;
  }

  public record Golden(String name, Tensor w) {}

  /**
   * bf16 rows of the int4 (tinygemm) edge cases, in turn: zeros, signed zeros, a constant, all negative, +-tiny, +-1e4,
   * +-max finite (max - min overflows: infinite scale, NaN codes), max finite alone, a row 40x its
   * neighbour, 0.5% outliers, bf16 subnormals, one non-zero element, ordinary gaussian.
   */
  public static Tensor tinygemmEdgeMatrix(Random r, int rows, int cols) {
    float[] v = new float[rows * cols];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        double g = r.nextGaussian();
        float x = switch (i % 13) {
          case 0 -> 0f;
          case 1 -> j % 3 == 0 ? -0f : 0f;
          case 2 -> 3.25f;
          case 3 -> (float) (-Math.abs(g) - 0.01);
          case 4 -> (float) (g * 1e-8);
          case 5 -> (float) (g * 1e4);
          case 6 -> j % 2 == 0 ? Float.intBitsToFloat(0x7f7f0000) : -Float.intBitsToFloat(0x7f7f0000);
          case 7 -> j % 5 == 0 ? Float.intBitsToFloat(0x7f7f0000) : (float) g;
          case 8 -> (float) (g * 40);
          case 9 -> r.nextInt(200) == 0 ? (float) (g * 500) : (float) g;
          case 10 -> Float.intBitsToFloat((r.nextInt(0x80) << 16) | (g < 0 ? 0x80000000 : 0));
          case 11 -> j == cols / 2 ? -7.5f : 0f;
          default -> (float) g;
        };
        v[i * cols + j] = Bf16.round(x);
      }
    }
    return Tensor.fromFloats(DType.BF16, new long[] {rows, cols}, v);
  }
}
