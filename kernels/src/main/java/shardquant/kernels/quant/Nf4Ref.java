package shardquant.kernels.quant;

import java.util.Arrays;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * NF4 (QLoRA's 4-bit NormalFloat with double-quantized block scalers), the slow reference: bit for bit
 * what torchao 0.19's {@code to_nf4(w, block_size=64, scaler_block_size=256)} and
 * {@code NF4Tensor.get_original_weight()} (torchao/dtypes/nf4tensor.py) give on PyTorch's CPU kernels.
 * Every PyTorch op on a bf16/f16 tensor computes in float32 and rounds its result to the tensor's dtype,
 * so each step below rounds with {@link DType#round} exactly where one torch op ends.
 *
 * <p>The one tensor-global statistic is {@code scaler_mean}, the mean of all block absmax values. A
 * distributed job therefore runs in two passes, and quantizing a row shard with the whole tensor's mean
 * gives exactly that slice of every part of the whole-tensor result:
 * <ol>
 *   <li>executors: {@link #blockAbsmax} of each row shard;
 *   <li>driver: {@link #scalerMean} of the shards' absmax values concatenated in row order;
 *   <li>executors: {@link #quantize(Tensor, float)} of each row shard (a multiple of
 *       {@link #SHARD_ALIGNMENT} elements) with that mean;
 *   <li>anyone: {@link #dequantize} of any such part.
 * </ol>
 * The driver needs the absmax values themselves, not per-shard partial sums: PyTorch sums them in a
 * fixed cascade over the whole vector, and adding shard totals instead, even in double, puts the
 * float32 mean one ulp off torchao's on all three float32 golden cases.
 *
 * <p>Where torchao divides by zero, this class does the same rather than refuse, so that its bytes stay
 * torchao's (the golden weights contain such blocks):
 * <ul>
 *   <li>A block of 64 zeros has absmax 0; {@code 0 / 0} is NaN, and {@code min(dim)} returns index 0 for
 *       NaN, so each of its elements gets code 0 (-1.0) and dequantizes to minus the block's dequantized
 *       scaler (a small rounding residue of the mean), not to zero.
 *   <li>A run of 256 blocks whose absmax values all equal the mean (an all-zero tensor, a constant one)
 *       has scaler absmax 0, so {@code quantization_factor} is +inf and each scaler is {@code 0 * inf},
 *       NaN. torchao then casts NaN to int8, which C++ leaves undefined; x86's truncating conversion
 *       gives 0 and so does this class. Any stored value dequantizes the same ({@code q / inf = 0}, so
 *       the scaler is exactly the mean).
 * </ul>
 * NaN and infinite weights are refused with the element's index: torchao would carry them into the
 * mean and so into every scaler of the tensor.
 *
 * <p>The result is a {@link QuantizedTensor} of the {@code nf4} recipe: the parts of torchao's
 * {@code NF4Tensor} for a whole tensor or a row shard of one (declared by {@code Nf4Recipe.parts}),
 * owned together so that none is left behind; quantizing never keeps a reference to the input, and
 * dequantizing is the explicit {@link #dequantize} call. Layout, as torchao stores it for an input of
 * {@code numel} elements of a floating {@code dtype}:
 * <ul>
 *   <li>{@code quantized_data}: uint8 [numel / 2]; byte {@code j} holds element {@code 2j}'s 4-bit code in
 *       its high nibble and element {@code 2j+1}'s in its low nibble ({@code q[::2] << 4 | q[1::2]});
 *       a code indexes {@link #table}.
 *   <li>{@code scaler_mean}: the mean of all block absmax values of the whole tensor, a 0-dim tensor of
 *       dtype ({@code Tensor.mean()}); a row shard carries the whole tensor's mean, which is what makes
 *       its other parts exact slices.
 *   <li>{@code quantization_factor}: dtype [numel / (64 * 256)], one per 256 consecutive blocks.
 *   <li>{@code quantized_scalers}: int8 [numel / 64], one per block of 64 elements: the block's absmax
 *       minus {@code scaler_mean}, times its scaler block's {@code quantization_factor}, rounded.
 *   <li>{@code nf4}: dtype [16], {@link #table} in the weight's dtype.
 * </ul>
 */
public final class Nf4Ref {
  /** Elements per block with its own absmax scaler ({@code block_size}). */
  public static final int BLOCK_SIZE = 64;
  /** Blocks per group sharing one {@code quantization_factor} ({@code scaler_block_size}). */
  public static final int SCALER_BLOCK_SIZE = 256;
  /** Elements per scaler block: a row shard must hold a whole number of them. */
  public static final int SHARD_ALIGNMENT = BLOCK_SIZE * SCALER_BLOCK_SIZE;

  /** torchao's table, as Python floats; {@code torch.tensor(..., dtype=d)} rounds each double to float, then to d. */
  private static final double[] NF4 = {
    -1.0000, -0.6962, -0.5251, -0.3949, -0.2844, -0.1848, -0.0911, 0.0000,
    0.0796, 0.1609, 0.2461, 0.3379, 0.4407, 0.5626, 0.7230, 1.0000,
  };

  // The shape of PyTorch's CPU float32 sum (aten/src/ATen/native/cpu/SumKernel.cpp, cascade_sum for a
  // contiguous input): Vectorized<float> lanes, row_sum's ilp_factor and multi_row_sum's num_levels.
  // Eight lanes is the AVX2 build that made the golden cases: with AVX-512's sixteen, two of the three
  // float32 means come out one ulp off.
  private static final int SUM_LANES = 8;
  private static final int SUM_ILP = 4;
  private static final int SUM_LEVELS = 4;

  private Nf4Ref() {}

  /** torchao's {@code nf4} lookup table, rounded into {@code dtype}. */
  public static float[] table(DType dtype) {
    requireFloating(dtype);
    float[] t = new float[NF4.length];
    for (int i = 0; i < t.length; i++) {
      t[i] = dtype.round((float) NF4[i]);
    }
    return t;
  }

  /**
   * Pass 1 on one row shard: {@code get_block_absmax}, the largest |x| of each block of 64 consecutive
   * elements, in the shard's dtype. The shard may hold any whole number of blocks.
   */
  public static float[] blockAbsmax(Tensor shard) {
    checkRankAndDType(shard.dtype(), shard.shape());
    long numel = shard.numel();
    if (numel % BLOCK_SIZE != 0) {
      throw new IllegalArgumentException("NF4 needs the element count to be a multiple of the block size "
          + BLOCK_SIZE + "; shape " + Arrays.toString(shard.shape()) + " has " + numel + " elements ("
          + numel + " % " + BLOCK_SIZE + " = " + numel % BLOCK_SIZE + ")");
    }
    return absmax(finiteValues(shard));
  }

  /**
   * Pass 2 on the driver: {@code scalers_1.mean()} of the whole tensor's block absmax values (all
   * shards' {@link #blockAbsmax} concatenated in row order). PyTorch's CPU mean of a bf16/f16 tensor sums
   * in float32, divides, then rounds to the dtype (ReduceOps.cpp {@code mean_out}); the sum here follows
   * PyTorch's single-threaded cascade order exactly. PyTorch splits sums of 32768 values or more
   * ({@code at::internal::GRAIN_SIZE}, 2M weights) across its threads, in an order that depends on the
   * thread count; there the mean may differ from that machine's by an ulp.
   */
  public static float scalerMean(DType dtype, float[] blockAbsmax) {
    requireFloating(dtype);
    if (blockAbsmax.length == 0 || blockAbsmax.length % SCALER_BLOCK_SIZE != 0) {
      throw new IllegalArgumentException("the scaler mean needs the absmax values of a whole tensor, a positive "
          + "multiple of " + SCALER_BLOCK_SIZE + " of them (one per block of " + BLOCK_SIZE + "); got "
          + blockAbsmax.length);
    }
    for (int b = 0; b < blockAbsmax.length; b++) {
      float a = blockAbsmax[b];
      if (!(a >= 0) || Float.isInfinite(a) || dtype.round(a) != a) {
        throw new IllegalArgumentException("block absmax " + b + " is " + a + ", not a finite non-negative "
            + dtype.torchName() + " value from blockAbsmax");
      }
    }
    float sum = cpuSum(blockAbsmax);
    if (Float.isInfinite(sum)) {
      throw new IllegalArgumentException("the " + blockAbsmax.length + " block absmax values sum past float32's "
          + "range, so torchao's scaler mean would be inf and every scaler NaN; NF4 cannot hold this tensor");
    }
    return dtype.round(sum / (float) blockAbsmax.length);
  }

  /** The same from each row shard's {@link #blockAbsmax}, in row order (the job's first pass). */
  public static float scalerMean(DType dtype, java.util.List<float[]> shardsInRowOrder) {
    float[] all = new float[shardsInRowOrder.stream().mapToInt(b -> b.length).sum()];
    int at = 0;
    for (float[] b : shardsInRowOrder) {
      System.arraycopy(b, 0, all, at, b.length);
      at += b.length;
    }
    return scalerMean(dtype, all);
  }

  /** {@code to_nf4(w, 64, 256)}: both passes over one whole tensor. */
  public static QuantizedTensor quantize(Tensor w) {
    checkShape(w.dtype(), w.shape());
    return quantize(w, scalerMean(w.dtype(), blockAbsmax(w)));
  }

  /**
   * Pass 3 on one row shard, given the whole tensor's {@link #scalerMean}: {@code double_quantize_scalers}
   * and {@code convert_to_norm_float_weight}. The shard must hold a whole number of
   * {@link #SHARD_ALIGNMENT}-element groups, so that its blocks and scaler blocks are the whole tensor's.
   */
  public static QuantizedTensor quantize(Tensor shard, float scalerMean) {
    DType d = shard.dtype();
    long numel = checkShape(d, shard.shape());
    checkScalerMean(d, scalerMean);
    float[] x = finiteValues(shard);
    float[] absmax = absmax(x);

    // double_quantize_scalers: centre the block scalers on the mean, then quantize each run of 256 of
    // them to int8 with the factor 256 / (2 * their absmax). `256 / t` is Tensor.__rtruediv__, which is
    // `t.reciprocal() * 256`: two roundings.
    QuantizedTensor q = QuantizedTensor.allocate(QuantConfig.of(Recipe.NF4), shard);
    Tensor quantizedScalers = q.part("quantized_scalers");
    Tensor factors = q.part("quantization_factor");
    float[] centred = new float[SCALER_BLOCK_SIZE];
    for (int s = 0; s < factors.numel(); s++) {
      float scalerAbsmax = 0;
      for (int j = 0; j < SCALER_BLOCK_SIZE; j++) {
        centred[j] = d.round(absmax[s * SCALER_BLOCK_SIZE + j] - scalerMean);
        scalerAbsmax = Math.max(scalerAbsmax, Math.abs(centred[j]));
      }
      float factor = d.round(d.round(1f / d.round(2f * scalerAbsmax)) * 256f);
      factors.setFloat(s, factor);
      for (int j = 0; j < SCALER_BLOCK_SIZE; j++) {
        quantizedScalers.setInt(s * SCALER_BLOCK_SIZE + j, toInt8(d.round(centred[j] * factor)));
      }
    }

    // convert_to_norm_float_weight: each element over its block's absmax, to the nearest table entry,
    // two codes per byte, the even element in the high nibble.
    float[] table = table(d);
    Tensor packed = q.part("quantized_data");
    for (int j = 0; j < numel / 2; j++) {
      float scale = absmax[2 * j / BLOCK_SIZE];
      int high = nearest(table, d.round(x[2 * j] / scale), d);
      int low = nearest(table, d.round(x[2 * j + 1] / scale), d);
      packed.setInt(j, high << 4 | low);
    }

    writeReplicated(q, scalerMean);
    return q;
  }

  /**
   * Writes the two parts every shard holds whole into {@code q} (as {@link QuantizedTensor#allocate}
   * gives it): {@code scaler_mean}, the whole tensor's, and the {@code nf4} table, in the weight's dtype.
   */
  public static void writeReplicated(QuantizedTensor q, float scalerMean) {
    q.part("scaler_mean").setFloat(0, scalerMean);
    float[] table = table(q.originalDType());
    Tensor nf4 = q.part("nf4");
    for (int i = 0; i < table.length; i++) {
      nf4.setFloat(i, table[i]);
    }
  }

  /**
   * {@code get_original_weight()}: {@code nf4[code] * (q / quantization_factor + scaler_mean)}, each op
   * rounded to the dtype ({@code dequantize_scalers}, then the product). Works on a row shard alone,
   * since it carries the whole tensor's mean.
   */
  public static Tensor dequantize(QuantizedTensor q) {
    if (q.config().recipe() != Recipe.NF4) {
      throw new IllegalArgumentException("Nf4Ref dequantizes nf4 tensors, got " + q);
    }
    DType d = q.originalDType();
    checkShape(d, q.shape());
    float scalerMean = scalerMean(q);
    checkScalerMean(d, scalerMean);
    float[] table = table(d);
    Tensor data = q.part("quantized_data");
    Tensor scalers = q.part("quantized_scalers");
    Tensor factors = q.part("quantization_factor");
    float[] out = new float[Math.toIntExact(Tensor.numel(q.shape()))];
    for (int b = 0; b < scalers.numel(); b++) {
      float factor = factors.getFloat(b / SCALER_BLOCK_SIZE);
      float scaler = d.round(d.round(scalers.getInt(b) / factor) + scalerMean);
      for (int i = b * BLOCK_SIZE; i < (b + 1) * BLOCK_SIZE; i++) {
        int code = (data.getInt(i / 2) >> (i % 2 == 0 ? 4 : 0)) & 0xF;
        out[i] = d.round(table[code] * scaler);
      }
    }
    return Tensor.fromFloats(d, q.shape(), out);
  }

  /** The {@code scaler_mean} an nf4 tensor (or row shard) holds: the whole tensor's. */
  public static float scalerMean(QuantizedTensor q) {
    return q.part("scaler_mean").getFloat(0);
  }

  /** The checks {@link #quantize} and {@link #dequantize} share; returns the element count. */
  private static long checkShape(DType dtype, long[] shape) {
    checkRankAndDType(dtype, shape);
    long numel = Tensor.numel(shape);
    if (numel == 0 || numel % SHARD_ALIGNMENT != 0) {
      throw new IllegalArgumentException("NF4 needs the element count to be a positive multiple of "
          + BLOCK_SIZE + " * " + SCALER_BLOCK_SIZE + " = " + SHARD_ALIGNMENT + " (blocks of " + BLOCK_SIZE
          + " elements, " + SCALER_BLOCK_SIZE + " blocks per quantization factor); shape " + Arrays.toString(shape)
          + " has " + numel + " elements (" + numel + " % " + SHARD_ALIGNMENT + " = " + numel % SHARD_ALIGNMENT
          + "). Quantize row shards of whole groups, or leave this tensor unquantized.");
    }
    return numel;
  }

  private static void checkScalerMean(DType dtype, float scalerMean) {
    if (!Float.isFinite(scalerMean) || dtype.round(scalerMean) != scalerMean) {
      throw new IllegalArgumentException("scaler_mean must be a finite " + dtype.torchName() + " value as "
          + "Nf4Ref.scalerMean returns it, got " + scalerMean);
    }
  }

  private static void checkRankAndDType(DType dtype, long[] shape) {
    requireFloating(dtype);
    if (shape.length < 1 || shape.length > 2) {
      throw new IllegalArgumentException("NF4 takes 1-D or 2-D tensors, as torchao's NF4Tensor.from_tensor does; "
          + "got shape " + Arrays.toString(shape));
    }
  }

  private static void requireFloating(DType dtype) {
    if (!dtype.quantizable()) {
      throw new IllegalArgumentException(
          "NF4 quantizes float32, bfloat16 or float16 tensors, got " + dtype.torchName());
    }
  }

  private static float[] finiteValues(Tensor t) {
    float[] x = t.toFloats();
    for (int i = 0; i < x.length; i++) {
      if (!Float.isFinite(x[i])) {
        throw new IllegalArgumentException("NF4 input holds " + x[i] + " at flat element " + i + " (block "
            + i / BLOCK_SIZE + "); torchao would carry it into the scaler mean and so into every scaler");
      }
    }
    return x;
  }

  /** {@code blocks.abs().max(dim=1).values}; abs and max are exact in any dtype. */
  private static float[] absmax(float[] x) {
    float[] m = new float[x.length / BLOCK_SIZE];
    for (int i = 0; i < x.length; i++) {
      m[i / BLOCK_SIZE] = Math.max(m[i / BLOCK_SIZE], Math.abs(x[i]));
    }
    return m;
  }

  /**
   * {@code .round().clamp(-128, 127).to(torch.int8)}: round half to even, clamp keeping NaN, and NaN
   * cast to 0 as x86 truncation leaves it (see the class comment).
   */
  private static int toInt8(float v) {
    float clamped = Math.min(Math.max((float) Math.rint(v), -128f), 127f);
    return Float.isNaN(clamped) ? 0 : (int) clamped;
  }

  /**
   * The code {@link #quantize} gives an element whose float32 quotient by its block's absmax is
   * {@code quotient} (before the rounding to {@code dtype}); NaN (a zero block's 0 / 0) gives 0. Lets
   * optimized kernels derive their decision thresholds from this class rather than restate it.
   */
  public static int code(float quotient, DType dtype) {
    return nearest(table(dtype), dtype.round(quotient), dtype);
  }

  /**
   * {@code quantize_tensor_nearest}: {@code (value - nf4).abs().min(dim=-1).indices}. The difference is
   * rounded to the dtype first, which makes ties common in bf16; PyTorch's CPU min kernel
   * (TensorCompareKernel.cpp {@code min_kernel_impl}) keeps the first index of a tie and stops at the
   * first NaN, so a NaN value (a zero block's 0/0) gets index 0.
   */
  private static int nearest(float[] table, float value, DType d) {
    float min = d.round(Math.abs(value - table[0]));
    int index = 0;
    for (int i = 0; i < table.length; i++) {
      float diff = d.round(Math.abs(value - table[i]));
      if (!(diff >= min)) {
        min = diff;
        index = i;
        if (Float.isNaN(diff)) {
          break;
        }
      }
    }
    return index;
  }

  /**
   * PyTorch's CPU float32 sum of a contiguous vector whose length is a multiple of
   * {@code SUM_LANES * SUM_ILP} (so none of the kernel's scalar tails runs): {@code vectorized_inner_sum}
   * adds the lanes of {@code row_sum}'s vector, which adds the four partial vectors of
   * {@code multi_row_sum} over rows of four vectors.
   */
  static float cpuSum(float[] x) {
    assert x.length % (SUM_LANES * SUM_ILP) == 0 : x.length;
    float[][] partial = multiRowSum(x, x.length / (SUM_LANES * SUM_ILP));
    for (int k = 1; k < SUM_ILP; k++) {
      addInto(partial[0], partial[k]);
    }
    float sum = 0;
    for (float lane : partial[0]) {
      sum += lane;
    }
    return sum;
  }

  /**
   * {@code multi_row_sum<Vectorized<float>, 4>}: row {@code i} is vectors {@code 4i .. 4i+3}. Chunks of
   * {@code 2^levelPower} rows accumulate in level 0, and each full chunk carries up one level, so only
   * sums of similar size meet (the "cascade").
   */
  private static float[][] multiRowSum(float[] x, int rows) {
    int levelPower = Math.max(4, ceilLog2(rows) / SUM_LEVELS);
    int levelStep = 1 << levelPower;
    long levelMask = levelStep - 1;
    float[][][] acc = new float[SUM_LEVELS][SUM_ILP][SUM_LANES];
    int i = 0;
    while (i + levelStep <= rows) {
      for (int j = 0; j < levelStep; j++, i++) {
        addRow(acc[0], x, i);
      }
      for (int j = 1; j < SUM_LEVELS; j++) {
        for (int k = 0; k < SUM_ILP; k++) {
          addInto(acc[j][k], acc[j - 1][k]);
          Arrays.fill(acc[j - 1][k], 0f);
        }
        if ((i & (levelMask << (j * levelPower))) != 0) {
          break;
        }
      }
    }
    for (; i < rows; i++) {
      addRow(acc[0], x, i);
    }
    for (int j = 1; j < SUM_LEVELS; j++) {
      for (int k = 0; k < SUM_ILP; k++) {
        addInto(acc[0][k], acc[j][k]);
      }
    }
    return acc[0];
  }

  private static void addRow(float[][] acc, float[] x, int row) {
    for (int k = 0; k < SUM_ILP; k++) {
      int base = (row * SUM_ILP + k) * SUM_LANES;
      for (int lane = 0; lane < SUM_LANES; lane++) {
        acc[k][lane] += x[base + lane];
      }
    }
  }

  private static void addInto(float[] acc, float[] v) {
    for (int lane = 0; lane < SUM_LANES; lane++) {
      acc[lane] += v[lane];
    }
  }

  /** {@code at::native::utils::CeilLog2}: 1 for x <= 2, else ceil(log2(x)). */
  private static int ceilLog2(long x) {
    return x <= 2 ? 1 : 64 - Long.numberOfLeadingZeros(x - 1);
  }

  /**
   * {@code c_1 .. c_15}: for each code, the smallest float32 quotient {@code x / absmax} in (-1, 1] whose
   * {@link #code} is at least it, for {@code dtype}'s table and rounding. The code of a quotient is then
   * the number of thresholds at or below it, which is how the SIMD and CUDA kernels pick codes: found by
   * bisecting this reference's own {@code code}, so ties and midpoints fall where the reference puts them.
   */
  public static float[] codeThresholds(DType dtype) {
    float[] c = new float[15];
    for (int code = 1; code < 16; code++) {
      int lo = orderKey(-1f); // code(-1) = 0
      int hi = orderKey(1f); // code(1) = 15
      while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (code(fromOrderKey(mid), dtype) >= code) {
          hi = mid;
        } else {
          lo = mid;
        }
      }
      c[code - 1] = fromOrderKey(hi);
    }
    return c;
  }

  /** An int that orders as the float does (-0.0 just below +0.0); {@link #fromOrderKey} inverts it. */
  public static int orderKey(float f) {
    int bits = Float.floatToRawIntBits(f);
    return bits ^ ((bits >> 31) & 0x7fffffff);
  }

  public static float fromOrderKey(int key) {
    return Float.intBitsToFloat(key ^ ((key >> 31) & 0x7fffffff));
  }
}
