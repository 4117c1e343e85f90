package shardquant.kernels.backend.simd;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import shardquant.kernels.backend.reference.ReferenceBackend;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.Nf4Ref;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * NF4 ({@link Nf4Ref}, which documents the layout) fused per
 * group of 64 x 256 elements: one pass for the 256 block absmax values and the double-quantized
 * scalers, one pass (over the same, cache-resident, input) for the codes, the packed bytes and the
 * verification sums. Anything the fast path does not take (1-D shards, bad shapes, a missing mean,
 * NaN or infinite weights) goes to the reference, which computes it or throws its own error.
 *
 * <p>The code search. torchao picks the first index of the smallest {@code d.round(|v - nf4[i]|)},
 * {@code v = d.round(x / absmax)}. On a block's quotients {@code q = x / absmax}, all in [-1, 1], that
 * choice is a non-decreasing step function of {@code q}: the rounded differences fall then rise along
 * the sorted table, and the entries lie at least 0.0796 apart, far more than two bf16 ulps of a
 * difference below 2, so only the two entries around {@code q} can tie. The code is therefore the number
 * of thresholds {@code c_1 .. c_15} at or below {@code q}, {@code c_i} being the smallest float32
 * quotient whose reference code is at least {@code i}. The thresholds come from bisecting
 * {@link Nf4Ref#code} itself, so ties and quotients exactly on a midpoint land where the reference puts
 * them, with no rounding to the dtype in the loop; NaN (a zero block's 0 / 0) passes no threshold and
 * gets code 0, as torchao's {@code min()} gives. SimdNf4Test checks the step function against the
 * reference on every bf16 and f16 value and around every float32 threshold.
 */
final class SimdNf4 implements SimdKernel {
  private static final int BLOCK = Nf4Ref.BLOCK_SIZE;
  private static final int SCALER_BLOCK = Nf4Ref.SCALER_BLOCK_SIZE;
  private static final int GROUP = Nf4Ref.SHARD_ALIGNMENT;
  private static final int CODES = 16;
  private static final int LANES = SimdLoad.LANES;
  private static final VectorSpecies<Byte> BYTES = ByteVector.SPECIES_64;
  private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

  private static final float[] F32_THRESHOLDS = Nf4Ref.codeThresholds(DType.F32);
  private static final float[] BF16_THRESHOLDS = Nf4Ref.codeThresholds(DType.BF16);
  private static final float[] F16_THRESHOLDS = Nf4Ref.codeThresholds(DType.F16);
  private static float[] thresholdsFor(DType dtype) {
    return switch (dtype) {
      case F32 -> F32_THRESHOLDS;
      case BF16 -> BF16_THRESHOLDS;
      case F16 -> F16_THRESHOLDS;
      default -> throw new IllegalArgumentException("NF4 quantizes float32, bfloat16 or float16, not " + dtype);
    };
  }

  private static boolean readable(DType dtype) {
    return dtype == DType.F32 || dtype == DType.BF16 || dtype == DType.F16;
  }

  /** The first pass, {@link Nf4Ref#blockAbsmax}. */
  @Override
  public float[] firstPass(QuantConfig c, Tensor shard) {
    long numel = shard.numel();
    if (!readable(shard.dtype()) || shard.rank() < 1 || shard.rank() > 2 || numel % BLOCK != 0) {
      return Nf4Ref.blockAbsmax(shard);
    }
    SimdLoad in = new SimdLoad(shard);
    float[] absmax = new float[Math.toIntExact(numel / BLOCK)];
    float[] x = new float[(int) Math.min(GROUP, numel)];
    for (int from = 0; from < numel; from += x.length) {
      int n = (int) Math.min(x.length, numel - from);
      in.decode(from, x, 0, n);
      for (int b = 0; b < n / BLOCK; b++) {
        float m = absmax(x, b * BLOCK);
        if (!(m <= Float.MAX_VALUE)) {
          return Nf4Ref.blockAbsmax(shard); // throws, naming the element
        }
        absmax[from / BLOCK + b] = m;
      }
    }
    return absmax;
  }

  /** Largest |x| of the block at {@code x[from]}; NaN or infinity if it holds one (max keeps NaN). */
  private static float absmax(float[] x, int from) {
    // two independent max chains (order-free; a NaN in either wins the final max)
    FloatVector m0 = FloatVector.fromArray(SimdLoad.F, x, from).abs();
    FloatVector m1 = FloatVector.fromArray(SimdLoad.F, x, from + LANES).abs();
    for (int k = 2 * LANES; k < BLOCK; k += 2 * LANES) {
      m0 = m0.max(FloatVector.fromArray(SimdLoad.F, x, from + k).abs());
      m1 = m1.max(FloatVector.fromArray(SimdLoad.F, x, from + k + LANES).abs());
    }
    return m0.max(m1).reduceLanes(VectorOperators.MAX);
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    DType d = rows.dtype();
    float mean = global.scalerMean();
    long numel = rows.numel();
    if (!readable(d) || rows.rank() != 2 || numel == 0 || numel % GROUP != 0 || !Float.isFinite(mean)
        || d.round(mean) != mean) {
      return ReferenceBackend.INSTANCE.quantize(rows, c, global, stats); // computes it, or says what is wrong
    }
    QuantizedTensor out = QuantizedTensor.allocate(c, rows);
    Shard s = new Shard(rows, mean, out);
    for (int g = 0; g < s.groups; g++) {
      if (!s.group(g)) {
        return ReferenceBackend.INSTANCE.quantize(rows, c, global, stats); // throws, naming the element
      }
    }
    if (!s.fusedStats) {
      s.unalignedRowStats();
    }
    s.sums.flush(s.stats);
    stats.merge(s.stats);
    Nf4Ref.writeReplicated(out, mean);
    return out;
  }

  /** One call's state: the input, the output parts and the scratch arrays, reused group after group. */
  private static final class Shard {
    final DType d;
    final float mean;
    final SimdLoad in;
    final int cols;
    final int groups;
    final boolean fusedStats;
    final float[] thresholds;
    final float[] table;
    final Tensor data;
    final Tensor scalers;
    final Tensor factors;
    final ByteBuffer dataOut;
    final ByteBuffer scalersOut;
    final QuantStats stats = new QuantStats();
    final SimdStats sums = new SimdStats();
    /** The group's weights and their dequantized values. */
    final float[] x = new float[GROUP];
    final float[] dq = new float[GROUP];
    final float[] absmax = new float[SCALER_BLOCK];
    final float[] centred = new float[SCALER_BLOCK];
    /** The group's dequantized block scalers and their int8 codes. */
    final float[] blockScalers = new float[SCALER_BLOCK];
    final byte[] scalerBytes = new byte[SCALER_BLOCK];
    /** The dequantized scaler of every block of the shard, kept only for {@link #unalignedRowStats}. */
    final float[] shardScalers;
    /** The 16 dequantized values of the current block, by code. */
    final float[] dequantized = new float[CODES];
    /** The current block's codes, one per byte. */
    final byte[] codes = new byte[BLOCK];
    int column;

    Shard(Tensor rows, float mean, QuantizedTensor out) {
      this.d = rows.dtype();
      this.mean = mean;
      this.in = new SimdLoad(rows);
      this.cols = Math.toIntExact(rows.cols());
      int numel = Math.toIntExact(rows.numel());
      this.groups = numel / GROUP;
      this.fusedStats = cols % LANES == 0;
      this.thresholds = thresholdsFor(d);
      this.table = Nf4Ref.table(d);
      this.data = out.part("quantized_data");
      this.scalers = out.part("quantized_scalers");
      this.factors = out.part("quantization_factor");
      this.dataOut = data.bytes();
      this.scalersOut = scalers.bytes();
      this.shardScalers = fusedStats ? null : new float[numel / BLOCK];
    }

    /** Quantizes group {@code g}; false if it holds a NaN or infinite weight. */
    boolean group(int g) {
      int first = g * GROUP;
      in.decode(first, x, 0, GROUP);
      for (int j = 0; j < SCALER_BLOCK; j++) {
        absmax[j] = absmax(x, j * BLOCK);
        if (!(absmax[j] <= Float.MAX_VALUE)) {
          return false;
        }
      }
      // double_quantize_scalers, as Nf4Ref.quantize: centre on the mean, factor 256 / (2 * absmax) as
      // reciprocal-then-multiply, each op rounded to the dtype.
      // Eight blocks at a time, each op as the reference's scalar one (JFR: the scalar loop was 9% of nf4).
      FloatVector scalerMax = FloatVector.zero(SimdLoad.F);
      for (int j = 0; j < SCALER_BLOCK; j += LANES) {
        FloatVector c = round(FloatVector.fromArray(SimdLoad.F, absmax, j).sub(mean), d);
        c.intoArray(centred, j);
        scalerMax = scalerMax.max(c.abs());
      }
      float scalerAbsmax = scalerMax.reduceLanes(VectorOperators.MAX);
      float factor = d.round(d.round(1f / d.round(2f * scalerAbsmax)) * 256f);
      factors.setFloat(g, factor);
      for (int j = 0; j < SCALER_BLOCK; j += LANES) {
        // toInt8: round half to even, clamp keeping NaN, NaN to 0; + 0 makes rint's -0.0 the int's 0
        FloatVector q = SimdMath.rint(round(FloatVector.fromArray(SimdLoad.F, centred, j).mul(factor), d))
            .max(-128f).min(127f).add(0f);
        q = q.blend(0f, q.compare(VectorOperators.NE, q)); // NaN alone differs from itself
        // the int8's byte: the low byte of the int of 1.5 * 2^23 + q (as SimdSymmetricAffine's codes)
        ((ByteVector) q.add(0x1.8p23f).reinterpretAsInts().castShape(BYTES, 0)).intoArray(scalerBytes, j);
        // get_original_weight's dequantize_scalers, on the stored int8 and factor
        round(round(q.div(factor), d).add(mean), d).intoArray(blockScalers, j);
      }
      scalersOut.put(g * SCALER_BLOCK, scalerBytes, 0, SCALER_BLOCK);
      for (int j = 0; j < SCALER_BLOCK; j++) {
        int b = g * SCALER_BLOCK + j;
        float scaler = blockScalers[j];
        if (!fusedStats) {
          shardScalers[b] = scaler;
        }
        // d.round(table[code] * scaler) for the 16 codes, two vectors (16 scalar roundings: 9% of the kernel)
        for (int code = 0; code < CODES; code += LANES) {
          round(FloatVector.fromArray(SimdLoad.F, table, code).mul(scaler), d).intoArray(dequantized, code);
        }
        block(j * BLOCK, absmax[j]);
        pack(first / 2 + j * BLOCK / 2);
      }
      if (fusedStats) {
        // whole vectors of whole rows: a row's pieces in two groups meet at a multiple of 8
        for (int at = 0; at < GROUP; ) {
          int n = Math.min(GROUP - at, cols - column);
          sums.add(x, dq, at, n);
          at += n;
          column += n;
          if (column == cols) {
            sums.endRow(cols, 0);
            column = 0;
          }
        }
      }
      return true;
    }

    /**
     * {@link SimdMath#round}, with the dtype tested here so that C2 inlines the one rounding it needs (as
     * SimdSymmetricAffine's).
     */
    private static FloatVector round(FloatVector v, DType dtype) {
      if (dtype == DType.BF16) {
        return SimdMath.roundBf16(v);
      }
      return dtype == DType.F16 ? SimdMath.roundF16(v) : v;
    }

    /** The codes of the block at {@code x[from]} into {@link #codes}, its dequantized values into {@link #dq}. */
    private void block(int from, float scale) {
      for (int k = 0; k < BLOCK; k += LANES) {
        FloatVector q = FloatVector.fromArray(SimdLoad.F, x, from + k).div(scale);
        FloatVector code = FloatVector.zero(SimdLoad.F);
        FloatVector value = FloatVector.broadcast(SimdLoad.F, dequantized[0]);
        for (int i = 1; i < CODES; i++) {
          VectorMask<Float> above = q.compare(VectorOperators.GE, thresholds[i - 1]);
          code = code.blend(i, above);
          value = value.blend(dequantized[i], above);
        }
        // 0..15 into the low bits of 2^23's float, whose int's low byte is then the code (no F2I, slow on AVX2)
        ((ByteVector) code.add(0x1p23f).reinterpretAsInts().castShape(BYTES, 0)).intoArray(codes, k);
        value.intoArray(dq, from + k);
      }
    }

    /**
     * Two codes per byte, the even element in the high nibble (Nf4Tensor's layout): 16 codes, read as
     * two little-endian longs, into 8 bytes with shifts and masks.
     */
    private void pack(int at) {
      for (int w = 0; w < BLOCK / 16; w++) {
        long first = (long) LONGS.get(codes, 16 * w);
        long second = (long) LONGS.get(codes, 16 * w + 8);
        dataOut.putLong(at + 8 * w, packPairs(first) | packPairs(second) << 32);
      }
    }

    /** Bytes b0..b7 (codes, little-endian) to the 4 bytes (b0 << 4 | b1), .., (b6 << 4 | b7), in the low half. */
    static long packPairs(long w) {
      long pairs = (w & 0x00ff00ff00ff00ffL) << 4 | (w >>> 8) & 0x00ff00ff00ff00ffL; // a byte per 16 bits
      long quads = (pairs | pairs >>> 8) & 0x0000ffff0000ffffL; // two bytes per 32 bits
      return (quads | quads >>> 16) & 0xffffffffL;
    }

    /** The verification sums when a row is not a whole number of vectors: from the packed codes, row by row. */
    void unalignedRowStats() {
      float[] rowX = new float[cols];
      float[] rowD = new float[cols];
      int rows = groups * GROUP / cols;
      for (int r = 0; r < rows; r++) {
        int rowStart = r * cols;
        in.decode(rowStart, rowX, 0, cols);
        for (int j = 0; j < cols; j++) {
          int i = rowStart + j;
          int code = (dataOut.get(i / 2) >> (i % 2 == 0 ? 4 : 0)) & 0xf;
          rowD[j] = d.round(table[code] * shardScalers[i / BLOCK]);
        }
        sums.add(rowX, rowD, 0, cols);
        sums.endRow(cols, 0);
      }
    }
  }
}
