package shardquant.kernels.backend.simd;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import shardquant.kernels.dtype.Bf16;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.AffineSpec;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.RecipeKernel;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * tinygemm's asymmetric int4 ({@code int4-tile-packed}, {@code int4-cpu}) in one pass over each group of
 * each row: the group's min and max, its bf16 scale and zero, the codes, the verification sums, and the
 * codes and qparams written straight into {@code qdata} and {@code scale_and_zero}. The same arithmetic
 * as {@code TinygemmInt4.quantize} (the FLOAT zero point domain of {@code AffineQuantRef} and
 * {@code AffineElementwise}), every bf16 op rounded to bf16 as PyTorch does.
 *
 * <p>Shapes (and tile-packed's zero padding of N to 8 and K to 1024) come from the recipe's own
 * {@link RecipeKernel#parts}; padded elements are zeros, quantized like any other, and count toward a real
 * row's clipped elements as in the reference, while the stat blocks are the real rows' real columns.
 *
 * <p>Rows go in pairs because the CPU layout packs two rows' codes into each byte; the tile layout packs
 * rows alone and pairs them in order. The byte layouts are documented once, in
 * {@link shardquant.kernels.layout.TensorCoreTiledInt4Layout}, {@link shardquant.kernels.layout.CpuInt4Layout}
 * and {@link shardquant.kernels.layout.TinygemmScaleZero}; the packers below follow them.
 */
final class SimdInt4 implements SimdKernel {
  private static final VectorSpecies<Float> F = SimdLoad.F;
  private static final VectorSpecies<Integer> I = IntVector.SPECIES_256;
  private static final int LANES = SimdLoad.LANES;
  /** 1.5·2^23: see {@link Pass#quantizeGroup}. */
  private static final float ROUNDER = 0x1.8p23f;
  private static final int ROUNDER_BITS = Float.floatToRawIntBits(ROUNDER);
  /** See {@link Pass#chunk}. */
  private static final int CHUNK = 1024;
  /**
   * {@link SimdMath#roundBf16} (bits + lsb + 0x7fff, low 16 bits cleared) is written out in this kernel's
   * loops rather than called: C2 inlines those loops into {@code group} and, once that method's graph
   * passes its node limit (NodeCountInliningCutoff), stops inlining ordinary methods, so a call taking and
   * returning a vector becomes a real call on heap-allocated vectors (3x slower, measured on Java 17 after
   * a change elsewhere in the kernel moved that limit). Vector API methods are always inlined.
   */
  private static final int ROUND_BF16 = 0x7fff;
  private static final int BF16_BITS = 0xffff0000;
  /** Shift of each lane's nibble in a tile word: the odd column of a pair goes to the upper 16 bits. */
  private static final IntVector ODD_HIGH = IntVector.fromArray(I, new int[] {0, 16, 0, 16, 0, 16, 0, 16}, 0);

  private final Int4Layout layout;

  SimdInt4(Int4Layout layout) {
    this.layout = layout;
  }

  /** How rows pair up and where a pair's codes go in {@code layout}'s qdata. */
  private static Packer packer(Int4Layout layout, Tensor qdata, int n, int k) {
    return switch (layout) {
      case TILE_PACKED -> new TilePacker(qdata, k);
      case CPU -> new CpuPacker(qdata, n, k);
      case PLAIN -> throw new IllegalArgumentException("no recipe writes the " + layout.cliName() + " int4 layout");
    };
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    RecipeKernel recipe = c.recipe().kernel();
    String refusal = recipe.refusal(rows.rows(), rows.cols(), rows.dtype(), c);
    if (refusal != null) {
      throw new IllegalArgumentException(refusal);
    }
    List<PartSpec> specs = recipe.parts(rows.rows(), rows.cols(), rows.dtype(), c);
    Map<String, Tensor> parts = new LinkedHashMap<>();
    for (PartSpec spec : specs) {
      parts.put(spec.name(), Tensor.allocate(spec.dtype(), spec.shape()));
    }
    Tensor scaleAndZero = parts.get("scale_and_zero");
    int n = Math.toIntExact(scaleAndZero.shape()[1]);
    int k = Math.toIntExact(scaleAndZero.shape()[0] * c.groupSize());
    QuantStats shard = new QuantStats(); // added to stats only when the whole shard succeeded, as the reference does
    new Pass(rows, c.groupSize(), n, k, scaleAndZero, packer(layout, parts.get("qdata"), n, k), shard).run();
    stats.merge(shard);
    return new QuantizedTensor(c, rows.shape(), rows.dtype(), parts);
  }

  /** One shard's pass, with its scratch (a call may run on any thread, so nothing is shared). */
  private static final class Pass {
    private final SimdLoad in;
    private final int rows;
    private final int cols;
    private final int group;
    private final int n;
    private final int groups;
    private final ByteBuffer scaleAndZero;
    private final Packer packer;
    private final QuantStats stats;
    private final float range;
    private final float mid;
    private final float eps;
    /** Columns read at a time per row: a multiple of every group size, 4 KiB of floats that stay in L1. */
    private final int chunk;
    /** The low and high row's current chunk, and a chunk's dequantized values. */
    private final float[] xLow;
    private final float[] xHigh;
    private final float[] dq;
    /** The last group's min and max ({@link #minMax}). */
    private float min;
    private float max;
    private final int[] lowCodes;
    private final int[] highCodes;
    private final SimdStats lowStats = new SimdStats();
    private final SimdStats highStats = new SimdStats();

    Pass(Tensor t, int group, int n, int k, Tensor scaleAndZero, Packer packer, QuantStats stats) {
      this.in = new SimdLoad(t);
      this.rows = Math.toIntExact(t.rows());
      this.cols = Math.toIntExact(t.cols());
      this.group = group;
      this.n = n;
      this.groups = k / group;
      this.scaleAndZero = scaleAndZero.bytes();
      this.packer = packer;
      this.stats = stats;
      AffineSpec spec = AffineSpec.tinygemmInt4(group, DType.BF16);
      // Python scalars as torchao writes them, in float32 (see AffineQuantRef.chooseQParams)
      this.range = (float) ((double) spec.quantMax() - spec.quantMin());
      this.mid = (float) ((spec.quantMax() + (double) spec.quantMin() + 1) / 2);
      this.eps = (float) spec.eps();
      this.chunk = Math.min(CHUNK, k);
      this.xLow = new float[chunk];
      this.xHigh = new float[chunk];
      this.dq = new float[chunk];
      this.lowCodes = new int[group];
      this.highCodes = new int[group];
    }

    void run() {
      for (int pair = 0; pair < n / 2; pair++) {
        int low = packer.lowRow(pair);
        int high = packer.highRow(pair);
        long lowClipped = 0;
        long highClipped = 0;
        for (int c0 = 0; c0 < groups * group; c0 += chunk) {
          int length = Math.min(chunk, groups * group - c0);
          load(low, c0, length, xLow);
          load(high, c0, length, xHigh);
          for (int o = 0; o < length; o += group) {
            lowClipped += group(low, c0 + o, xLow, o, lowCodes, lowStats);
            highClipped += group(high, c0 + o, xHigh, o, highCodes, highStats);
            packer.put(pair, c0 + o, lowCodes, highCodes);
          }
        }
        if (low < rows) {
          lowStats.endRow(cols, lowClipped);
        }
        if (high < rows) {
          highStats.endRow(cols, highClipped);
        }
      }
      lowStats.flush(stats);
      highStats.flush(stats);
    }

    /**
     * Reads columns [c0, c0 + length) of padded row {@code r} into {@code x}, zeros past the shard's rows
     * and columns: one bulk read per chunk rather than per group.
     */
    private void load(int r, int c0, int length, float[] x) {
      int real = r < rows ? Math.max(0, Math.min(length, cols - c0)) : 0;
      in.decode(r * cols + c0, x, 0, real);
      Arrays.fill(x, real, length, 0f);
    }

    /**
     * The group at column {@code col0} of padded row {@code r}, held in {@code x[o, o + group)}: writes its
     * scale and zero, puts its codes in {@code codes} and, for a real row, its real columns' sums in
     * {@code rowStats}. Returns how many codes clipped. Each vector loop is a method of its own, with
     * vectors that never leave it: C2 stops inlining a method that grows too large, and Vector API calls
     * it does not inline run as slow Java code.
     */
    private int group(int r, int col0, float[] x, int o, int[] codes, SimdStats rowStats) {
      int g = col0 / group;
      minMax(x, o);
      if (!Float.isFinite(min) || !Float.isFinite(max)) {
        throw nonFinite(r, col0, x, o);
      }
      // _choose_qparams_affine_tinygemm: scale = clamp((max - min) / range, eps), zero = min + scale * mid
      float scale = Bf16.round(Bf16.round(max - min) / range);
      if (scale < eps) {
        scale = Bf16.round(eps);
      }
      float scaleMid = Bf16.round(scale * mid);
      float zero = Bf16.round(min + scaleMid);
      int at = 4 * (g * n + r);
      scaleAndZero.putShort(at, Bf16.fromFloat(scale));
      scaleAndZero.putShort(at + 2, Bf16.fromFloat(zero));
      int clipped = group - quantizeGroup(x, o, Bf16.round(zero - scaleMid), scale, codes);
      dequantizeGroup(o, scale, zero, codes);
      int statCols = r < rows ? Math.min(group, cols - col0) : 0;
      if (statCols > 0) {
        rowStats.add(x, dq, o, statCols);
      }
      return clipped;
    }

    /**
     * The {@code min} and {@code max} of {@code x[o, o + group)}, as Math.min and Math.max give them for
     * finite values (-0.0 below 0.0), and not finite where one is. On ordered ints: a float's bits with
     * the magnitude bits flipped when negative order as the floats do, -0.0 just below 0.0, NaNs beyond
     * the infinities. Two integer ops a lane instead of the NaN-correct float min and max (about five
     * instructions each on AVX2).
     */
    private void minMax(float[] x, int o) {
      IntVector lo = IntVector.broadcast(I, Integer.MAX_VALUE);
      IntVector hi = IntVector.broadcast(I, Integer.MIN_VALUE);
      for (int v = o; v < o + group; v += LANES) {
        IntVector bits = FloatVector.fromArray(F, x, v).reinterpretAsInts();
        IntVector ordered = bits.lanewise(VectorOperators.XOR, bits.lanewise(VectorOperators.ASHR, 31).and(Integer.MAX_VALUE));
        lo = lo.min(ordered);
        hi = hi.max(ordered);
      }
      min = fromOrdered(lo.reduceLanes(VectorOperators.MIN));
      max = fromOrdered(hi.reduceLanes(VectorOperators.MAX));
    }

    /** The float whose ordered int ({@link #minMax}) is {@code ordered}: the same flip undoes it. */
    private static float fromOrdered(int ordered) {
      return Float.intBitsToFloat(ordered ^ (ordered >> 31 & Integer.MAX_VALUE));
    }

    /**
     * _quantize_affine_tinygemm's codes of {@code x}, round((x - minVal) / scale) clamped to [0, 15], into
     * {@code codes}; returns how many were in range before the clamp.
     *
     * <p>Rounding by adding 1.5·2^23: a float of magnitude up to 2^22 plus it rounds to an integer (ties to
     * even, as torch.round) held in the low mantissa bits, so the sum's bits minus the constant's are the
     * rounded value as an int. Below -1 (where the sum's bits could wrap) and NaN become -1; above 2^22 the
     * int is beyond 15: either way the clamp's result and the range count are the reference's.
     */
    private int quantizeGroup(float[] x, int o, float minValue, float scale, int[] codes) {
      FloatVector minVal = FloatVector.broadcast(F, minValue);
      FloatVector s = FloatVector.broadcast(F, scale);
      FloatVector minusOne = FloatVector.broadcast(F, -1f);
      IntVector outside = IntVector.zero(I);
      for (int v = 0; v < group; v += LANES) {
        // SimdMath.roundBf16 written out, here and in dequantizeGroup (see ROUND_BF16)
        IntVector diff = FloatVector.fromArray(F, x, o + v).sub(minVal).reinterpretAsInts();
        diff = diff.add(diff.lanewise(VectorOperators.LSHR, 16).and(1)).add(ROUND_BF16).and(BF16_BITS);
        IntVector quotient = diff.reinterpretAsFloats().div(s).reinterpretAsInts();
        quotient = quotient.add(quotient.lanewise(VectorOperators.LSHR, 16).and(1)).add(ROUND_BF16).and(BF16_BITS);
        FloatVector q = quotient.reinterpretAsFloats();
        q = minusOne.blend(q, q.compare(VectorOperators.GE, -1f)); // NaN (a group whose range overflowed) too
        IntVector rounded = q.add(ROUNDER).reinterpretAsInts().sub(ROUNDER_BITS);
        // 1 where the code is outside [0, 15]: (t | -t) >>> 31 of its bits above the nibble
        IntVector high = rounded.and(~0xf);
        outside = outside.add(high.or(high.neg()).lanewise(VectorOperators.LSHR, 31));
        rounded.max(0).min(0xf).intoArray(codes, v);
      }
      return group - outside.reduceLanes(VectorOperators.ADD);
    }

    /**
     * _dequantize_affine_tinygemm of {@code codes} into {@code dq[o, o + group)}: (code - mid) * scale + zero,
     * each op rounded to bf16.
     */
    private void dequantizeGroup(int o, float scale, float zero, int[] codes) {
      FloatVector s = FloatVector.broadcast(F, scale);
      FloatVector z = FloatVector.broadcast(F, zero);
      for (int v = 0; v < group; v += LANES) {
        // code - mid, exactly: the code in the low bits of 1.5·2^23, less 1.5·2^23 + mid
        FloatVector centered = IntVector.fromArray(I, codes, v).add(ROUNDER_BITS).reinterpretAsFloats().sub(ROUNDER + mid);
        IntVector product = centered.mul(s).reinterpretAsInts();
        product = product.add(product.lanewise(VectorOperators.LSHR, 16).and(1)).add(ROUND_BF16).and(BF16_BITS);
        IntVector sum = product.reinterpretAsFloats().add(z).reinterpretAsInts();
        sum = sum.add(sum.lanewise(VectorOperators.LSHR, 16).and(1)).add(ROUND_BF16).and(BF16_BITS);
        sum.reinterpretAsFloats().intoArray(dq, o + v);
      }
    }

    /** The reference's refusal of NaN and infinity, for the first such element of the group. */
    private IllegalArgumentException nonFinite(int r, int col0, float[] x, int o) {
      int col = col0;
      while (Float.isFinite(x[o + col - col0])) {
        col++;
      }
      return new IllegalArgumentException("input bfloat16[" + rows + ", " + cols + "] holds " + x[o + col - col0]
          + " at flat index " + ((long) r * cols + col) + " (row " + r + ", column " + col
          + "); quantization needs finite values");
    }
  }

  /** Writes a row pair's codes for columns [col0, col0 + length) into qdata. */
  private abstract static class Packer {
    abstract int lowRow(int pair);

    abstract int highRow(int pair);

    abstract void put(int pair, int col0, int[] low, int[] high);
  }

  /**
   * {@link shardquant.kernels.layout.TensorCoreTiledInt4Layout}, int32 [N/8][K/(16·ikt)][32][ikt/2]: each
   * 32 columns of a row (k-tiles 2p and 2p+1 of a super-tile) make the four words of lanes t = 4·(r % 8) + u,
   * u = 0..3, word u holding columns 8j + 2u (bits 4j) and 8j + 2u + 1 (bits 16 + 4j).
   */
  private static final class TilePacker extends Packer {
    private final ByteBuffer out;
    private final int superTiles;
    private final int pairsPerWord;
    /** Columns per super-tile (16·innerKTiles: 32, 64 or 128), as a shift. */
    private final int superShift;
    private final int[] lanes = new int[LANES];

    TilePacker(Tensor qdata, int k) {
      long[] shape = qdata.shape();
      this.out = qdata.bytes();
      this.superTiles = Math.toIntExact(shape[1]);
      this.pairsPerWord = Math.toIntExact(shape[3]);
      int superCols = k / superTiles;
      if (Integer.bitCount(superCols) != 1 || superCols < 32) {
        throw new IllegalArgumentException("tile-packed int4 needs super-tiles of 2^n >= 32 columns, got " + superCols);
      }
      this.superShift = Integer.numberOfTrailingZeros(superCols);
    }

    @Override
    int lowRow(int pair) {
      return 2 * pair;
    }

    @Override
    int highRow(int pair) {
      return 2 * pair + 1;
    }

    @Override
    void put(int pair, int col0, int[] low, int[] high) {
      putRow(2 * pair, col0, low);
      putRow(2 * pair + 1, col0, high);
    }

    private void putRow(int r, int col0, int[] codes) {
      for (int o = 0; o < codes.length; o += 4 * LANES) {
        // lane 2u + e of chunk j is column 8j + 2u + e: nibble j of the low (e = 0) or high (e = 1) half-word u
        IntVector nibbles = IntVector.fromArray(I, codes, o)
            .or(IntVector.fromArray(I, codes, o + LANES).lanewise(VectorOperators.LSHL, 4))
            .or(IntVector.fromArray(I, codes, o + 2 * LANES).lanewise(VectorOperators.LSHL, 8))
            .or(IntVector.fromArray(I, codes, o + 3 * LANES).lanewise(VectorOperators.LSHL, 12));
        nibbles.lanewise(VectorOperators.LSHL, ODD_HIGH).intoArray(lanes, 0);
        int c = col0 + o;
        int word = (((r >> 3) * superTiles + (c >> superShift)) * 32 + 4 * (r & 7)) * pairsPerWord
            + ((c & ((1 << superShift) - 1)) >> 5);
        for (int u = 0; u < 4; u++) {
          out.putInt(4 * (word + u * pairsPerWord), lanes[2 * u] | lanes[2 * u + 1]);
        }
      }
    }
  }

  /**
   * {@link shardquant.kernels.layout.CpuInt4Layout} (AVX-512), uint8 [N][K/2] in blocks of 64 rows (the last
   * 16, 32 or 48): byte j of column c of the block at r0 holds rows r0 + j and r0 + j + 32 of a full block,
   * r0 + 2j and r0 + 2j + 1 of a shorter one, the first in the low nibble.
   */
  private static final class CpuPacker extends Packer {
    private static final int BLOCK = 64;
    private final ByteBuffer out;
    private final int n;
    private final int k;

    CpuPacker(Tensor qdata, int n, int k) {
      this.out = qdata.bytes();
      this.n = n;
      this.k = k;
    }

    private static int blockStart(int pair) {
      return 2 * pair / BLOCK * BLOCK;
    }

    private int blockRows(int pair) {
      return Math.min(BLOCK, n - blockStart(pair));
    }

    @Override
    int lowRow(int pair) {
      int r0 = blockStart(pair);
      int j = pair - r0 / 2;
      return blockRows(pair) == BLOCK ? r0 + j : r0 + 2 * j;
    }

    @Override
    int highRow(int pair) {
      return blockRows(pair) == BLOCK ? lowRow(pair) + BLOCK / 2 : lowRow(pair) + 1;
    }

    @Override
    void put(int pair, int col0, int[] low, int[] high) {
      int r0 = blockStart(pair);
      int half = blockRows(pair) / 2;
      int at = r0 * (k / 2) + col0 * half + (pair - r0 / 2);
      for (int c = 0; c < low.length; c++, at += half) {
        out.put(at, (byte) (low[c] | high[c] << 4));
      }
    }
  }
}
