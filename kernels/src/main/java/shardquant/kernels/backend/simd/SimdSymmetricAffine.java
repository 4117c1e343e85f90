package shardquant.kernels.backend.simd;

import java.nio.ByteBuffer;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.AffineSpec;
import shardquant.kernels.quant.BlockSize;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * Symmetric affine quantization of a row shard to int8-stored codes, one scale per group of
 * consecutive elements of a row (a group may be the whole row), fused: read, scale, codes, their
 * bytes and the verification sums, each input element read once (twice in a whole-row group longer
 * than a chunk: absmax first), no full-size intermediate arrays. It is torchao 0.19's choose_qparams_affine / quantize_affine /
 * dequantize_affine with MappingType.SYMMETRIC and the INT zero point domain, as
 * {@link shardquant.kernels.quant.AffineQuantRef} computes them, for input dtype {@code d} and scale
 * dtype {@code sd} (each op in float32, its result rounded to the dtype written before it):
 * <pre>
 *   amax = max |x|                        (the reference's max(-min(min, 0), max(max, 0)), no rounding)
 *   s    = d(amax / ((qmax - qmin) / 2)), or d(eps) below eps, stored in sd (d is exact in it)
 *   q    = clamp(rint(p(x * sd(1 / s))), qmin, qmax)      p = promote(d, sd): d, or f32 if they differ
 *   x'   = d(q * s)                       (the dequantized value the verification sums compare with x)
 * </pre>
 * The zero point, (qmax + qmin + 1) / 2 truncated, is 0: adding it to an integer code changes nothing,
 * so the kernel leaves it out and the zero point part keeps its allocated zeros. Codes and the
 * products above stay far below 2^11, so every integer here is exact in bf16 and f16.
 */
final class SimdSymmetricAffine {
  private static final VectorSpecies<Float> F = SimdLoad.F;
  private static final VectorSpecies<Byte> B = ByteVector.SPECIES_64;
  private static final int LANES = SimdLoad.LANES;
  /**
   * 1.5 * 2^23. For |v| < 2^22, v + 1.5 * 2^23 lies in [2^23, 2^24), where floats are the integers:
   * the add rounds v to an integer, ties to even (torch.round's rint; a zero's sign is lost, which no
   * code, dequantized value or sum can show), the sum's int bits end in that integer's two's
   * complement, and clamping sums clamps codes. |v| is the code before the clamp, at most about
   * (qmax - qmin) / 2 + 1: |x| <= amax and 1 / s ~ halfRange / amax (rounding of s and of its
   * reciprocal, even into f16 subnormals, moves it by well under 1%), or 0 for an infinite scale.
   * So the cast to int8 needs no F2I, which AVX2 lacks under Java 17 (it runs lane by lane).
   */
  private static final float INT_IN_MANTISSA = 0x1.8p23f;
  /** Elements per step, so the scratch arrays stay in L1; a multiple of every group size up to it. */
  private static final int CHUNK = 256;

  private final DType input;
  private final DType scaleDtype;
  private final DType productDtype;
  private final int group;
  private final float quantMin;
  private final float quantMax;
  private final float halfRange;
  private final float eps;

  /** Codes of {@code bits} bits (-2^(bits-1) .. 2^(bits-1) - 1) for groups of {@code group} elements of {@code input}. */
  SimdSymmetricAffine(DType input, int group, int bits, DType scaleDtype) {
    if (input != DType.F32 && input != DType.BF16 && input != DType.F16) {
      throw new IllegalArgumentException("symmetric affine quantization reads float32, bfloat16 or float16, got " + input);
    }
    if (bits < 1 || bits > 8) {
      throw new IllegalArgumentException("int8-stored codes take 1 to 8 bits, got " + bits);
    }
    this.input = input;
    this.scaleDtype = scaleDtype;
    this.productDtype = input == scaleDtype ? input : DType.F32;
    this.group = group;
    int half = 1 << (bits - 1);
    this.quantMin = -half;
    this.quantMax = half - 1;
    this.halfRange = (float) (((double) quantMax - quantMin) / 2); // a Python float, as torchao writes it
    this.eps = (float) AffineSpec.defaultEps(input);
  }

  /**
   * Quantizes {@code rows} [R, K] (K a multiple of the group size): codes into {@code codes} (int8
   * [R, K], row-major), each group's scale into {@code scales} ([R, K / group] of the scale dtype),
   * one stat block per row into {@code stats}. {@code stats} is left as it was when the input holds
   * a NaN or an infinity (an IllegalArgumentException like the reference's).
   *
   * <p>A row goes in chunks of at most 256 elements, whole groups or (a group longer than that being
   * the whole row) a piece of one: decoded once into a float scratch array that stays in L1, then
   * scales, codes and sums from it. Each step is its own loop method passing only arrays and scalars:
   * C2 stops inlining in a method grown too large, and a vector that crosses a call it did not inline
   * becomes a heap object, allocated per call.
   */
  void quantize(Tensor rows, Tensor codes, Tensor scales, QuantStats stats) {
    if (rows.dtype() != input) {
      throw new IllegalArgumentException("kernel for " + input + " given " + rows);
    }
    new BlockSize(1, group).check(rows.shape());
    int rowCount = Math.toIntExact(rows.rows());
    int cols = Math.toIntExact(rows.cols());
    if ((group > CHUNK || group % LANES != 0) && group != cols) {
      throw new IllegalArgumentException("groups of " + group + " elements must be multiples of " + LANES + " up to " + CHUNK
          + ", or whole rows; rows have " + cols);
    }
    boolean longGroups = group > CHUNK;
    int span = longGroups ? CHUNK : CHUNK / group * group;
    SimdLoad in = new SimdLoad(rows);
    ByteBuffer out = codes.bytes();
    QuantStats shard = new QuantStats();
    SimdStats sums = new SimdStats();
    float[] x = new float[CHUNK];
    float[] dequantized = new float[CHUNK];
    byte[] codeBytes = new byte[CHUNK];
    int groupsPerSpan = longGroups ? 1 : span / group;
    float[] scale = new float[groupsPerSpan];
    float[] reciprocal = new float[groupsPerSpan];
    for (int r = 0; r < rowCount; r++) {
      long clipped = 0;
      if (longGroups) {
        scale(absmax(in, r * cols, x), r * cols, in, rows, scales, scale, reciprocal, 0);
      }
      for (int c0 = 0; c0 < cols; c0 += span) {
        int at = r * cols + c0;
        int n = Math.min(span, cols - c0);
        decode(in, at, n, x);
        for (int g = 0; !longGroups && g < n / group; g++) {
          scale(absmax(x, g * group, group), at + g * group, in, rows, scales, scale, reciprocal, g);
        }
        clipped += codes(x, n, longGroups ? CHUNK : group, scale, reciprocal, codeBytes, dequantized);
        out.put(at, codeBytes, 0, n);
        sums.add(x, dequantized, n);
      }
      sums.endRow(cols, clipped);
    }
    sums.flush(shard);
    stats.merge(shard);
  }

  /**
   * The scale of the group at flat index {@code base} from its absmax: into {@code scales} (the part)
   * and {@code scale[k]}, with the reciprocal the codes use into {@code reciprocal[k]}.
   */
  private void scale(float amax, int base, SimdLoad in, Tensor rows, Tensor scales, float[] scale, float[] reciprocal,
      int k) {
    if (!Float.isFinite(amax)) { // NaN wins a max, so a NaN or an infinity shows here
      throw nonFinite(in, base, rows);
    }
    float s = input.round(amax / halfRange);
    s = s < eps ? input.round(eps) : s;
    scales.setFloat(base / group, s);
    scale[k] = s;
    reciprocal[k] = scaleDtype.round(1f / s);
  }

  /** max |x| over the (whole-row) group at flat index {@code base} of the input, a chunk at a time through {@code x}. */
  private float absmax(SimdLoad in, int base, float[] x) {
    float amax = 0;
    for (int j = 0; j < group; j += CHUNK) {
      int n = Math.min(CHUNK, group - j);
      decode(in, base + j, n, x);
      amax = Math.max(amax, absmaxChains(x, n));
    }
    return amax;
  }

  /** max |x| over x[from, from + n) of a decoded chunk, zero padded to a multiple of 8 (NaN if one is there). */
  private static float absmax(float[] x, int from, int n) {
    FloatVector max = FloatVector.zero(F);
    for (int j = from; j < from + n; j += LANES) {
      max = max.max(FloatVector.fromArray(F, x, j).abs());
    }
    return max.reduceLanes(VectorOperators.MAX);
  }

  /**
   * {@link #absmax(float[], int, int)} of x[0, n) in four independent max chains (a max is order-free,
   * and keeps a NaN whichever chain holds it): one chain waits on each max's latency (JFR: a fifth of
   * int8's time, rows of 1024 to 3584). Only the whole-row path uses it: grown into the groups' path,
   * this or any other added code made C2 compile 8da4w's loop a third slower after its first round.
   */
  private static float absmaxChains(float[] x, int n) {
    FloatVector m0 = FloatVector.zero(F);
    FloatVector m1 = m0;
    FloatVector m2 = m0;
    FloatVector m3 = m0;
    int j = 0;
    for (; j + 4 * LANES <= n; j += 4 * LANES) {
      m0 = m0.max(FloatVector.fromArray(F, x, j).abs());
      m1 = m1.max(FloatVector.fromArray(F, x, j + LANES).abs());
      m2 = m2.max(FloatVector.fromArray(F, x, j + 2 * LANES).abs());
      m3 = m3.max(FloatVector.fromArray(F, x, j + 3 * LANES).abs());
    }
    for (; j < n; j += LANES) {
      m0 = m0.max(FloatVector.fromArray(F, x, j).abs());
    }
    return m0.max(m1).max(m2.max(m3)).reduceLanes(VectorOperators.MAX);
  }

  /** Elements [at, at + n) as floats into {@code x}, zeros after them up to a multiple of 8. */
  private static void decode(SimdLoad in, int at, int n, float[] x) {
    in.decode(at, x, 0, n);
    for (int j = n; j % LANES != 0; j++) {
      x[j] = 0;
    }
  }

  /**
   * Codes of {@code x[0, n)} into {@code out} (whole vectors: up to n rounded up to a multiple of 8),
   * element j with {@code scale[j / groupLength]}, their dequantized values into {@code dequantized};
   * returns how many clipped (the zero padding never does).
   */
  private int codes(float[] x, int n, int groupLength, float[] scale, float[] reciprocal, byte[] out,
      float[] dequantized) {
    int clipped = 0;
    for (int k = 0, j = 0; j < n; k++) {
      float s = scale[k];
      float r = reciprocal[k];
      for (int end = Math.min(n, j + groupLength); j < end; j += LANES) {
        FloatVector code = round(FloatVector.fromArray(F, x, j).mul(r), productDtype).add(INT_IN_MANTISSA);
        FloatVector clamped = code.max(INT_IN_MANTISSA + quantMin).min(INT_IN_MANTISSA + quantMax);
        clipped += code.compare(VectorOperators.NE, clamped).trueCount();
        round(clamped.sub(INT_IN_MANTISSA).mul(s), input).intoArray(dequantized, j);
        ((ByteVector) clamped.reinterpretAsInts().castShape(B, 0)).intoArray(out, j);
      }
    }
    return clipped;
  }

  /**
   * {@link SimdMath#round}, with the dtype tested here so that C2 inlines the one rounding it needs: a
   * shared {@code round} compiled with every dtype's code is too big to inline into this loop, and every
   * vector crossing that call was boxed (profiled: half the int8 kernel's time).
   */
  private static FloatVector round(FloatVector v, DType dtype) {
    if (dtype == DType.BF16) {
      return SimdMath.roundBf16(v);
    }
    return dtype == DType.F16 ? SimdMath.roundF16(v) : v;
  }

  /** The reference's error for a non-finite input, naming the first one of the group at {@code base}. */
  private static IllegalArgumentException nonFinite(SimdLoad in, int base, Tensor rows) {
    int i = base;
    while (Float.isFinite(in.scalar(i))) {
      i++;
    }
    long cols = rows.cols();
    return new IllegalArgumentException("input " + rows + " holds " + in.scalar(i) + " at flat index "
        + i + " (row " + i / cols + ", column " + i % cols + "); quantization needs finite values");
  }
}
