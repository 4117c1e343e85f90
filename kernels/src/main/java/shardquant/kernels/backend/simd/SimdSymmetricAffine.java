package shardquant.kernels.backend.simd;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
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
 * bytes and the verification sums in two passes over each group (absmax, then codes), no
 * intermediate arrays. It is torchao 0.19's choose_qparams_affine / quantize_affine /
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
   */
  void quantize(Tensor rows, Tensor codes, Tensor scales, QuantStats stats) {
    if (rows.dtype() != input) {
      throw new IllegalArgumentException("kernel for " + input + " given " + rows);
    }
    new BlockSize(1, group).check(rows.shape());
    int rowCount = Math.toIntExact(rows.rows());
    int cols = Math.toIntExact(rows.cols());
    ByteBuffer in = rows.bytes();
    ByteBuffer out = codes.bytes();
    QuantStats shard = new QuantStats();
    SimdStats sums = new SimdStats();
    int full = group & -LANES;
    int tail = group - full;
    VectorMask<Float> all = F.maskAll(true);
    VectorMask<Float> tailLanes = SimdLoad.firstLanes(tail);
    for (int r = 0; r < rowCount; r++) {
      long clipped = 0;
      for (int g0 = 0; g0 < cols; g0 += group) {
        int base = r * cols + g0;
        float s = scale(in, base, full, tail, rows);
        scales.setFloat(base / group, s);
        float reciprocal = scaleDtype.round(1f / s);
        for (int j = 0; j < full; j += LANES) {
          clipped += codes(SimdLoad.load(in, input, base + j), s, reciprocal, out, base + j, LANES, all, sums);
        }
        if (tail > 0) {
          clipped += codes(SimdLoad.loadTail(in, input, base + full, tail), s, reciprocal, out, base + full, tail,
              tailLanes, sums);
        }
      }
      sums.endBlock(shard, cols, clipped);
    }
    stats.merge(shard);
  }

  /** The scale of the group at flat index {@code base}, from its absmax (NaN and infinity refused). */
  private float scale(ByteBuffer in, int base, int full, int tail, Tensor rows) {
    FloatVector max = FloatVector.zero(F);
    for (int j = 0; j < full; j += LANES) {
      max = max.max(SimdLoad.load(in, input, base + j).abs());
    }
    if (tail > 0) {
      max = max.max(SimdLoad.loadTail(in, input, base + full, tail).abs());
    }
    float amax = max.reduceLanes(VectorOperators.MAX); // NaN wins a max, so a NaN or infinity shows here
    if (!Float.isFinite(amax)) {
      throw nonFinite(in, base, rows);
    }
    float s = input.round(amax / halfRange);
    return s < eps ? input.round(eps) : s;
  }

  /**
   * Codes of {@code x} (its first {@code n} lanes valid) into {@code out} at {@code at}, their
   * dequantized values into the sums; returns how many valid lanes clipped.
   */
  private int codes(FloatVector x, float s, float reciprocal, ByteBuffer out, int at, int n, VectorMask<Float> valid,
      SimdStats sums) {
    FloatVector code = SimdMath.rint(SimdMath.round(x.mul(reciprocal), productDtype));
    FloatVector q = code.max(quantMin).min(quantMax);
    ByteVector bytes = (ByteVector) q.convertShape(VectorOperators.F2B, B, 0);
    if (n == LANES) {
      bytes.intoByteBuffer(out, at, ByteOrder.LITTLE_ENDIAN);
    } else {
      for (int k = 0; k < n; k++) {
        out.put(at + k, bytes.lane(k));
      }
    }
    sums.add(x, SimdMath.round(q.mul(s), input), valid);
    return code.compare(VectorOperators.NE, q).and(valid).trueCount();
  }

  /** The reference's error for a non-finite input, naming the first one of the group at {@code base}. */
  private IllegalArgumentException nonFinite(ByteBuffer in, int base, Tensor rows) {
    int i = base;
    while (Float.isFinite(SimdLoad.scalar(in, input, i))) {
      i++;
    }
    long cols = rows.cols();
    return new IllegalArgumentException("input " + rows + " holds " + SimdLoad.scalar(in, input, i) + " at flat index "
        + i + " (row " + i / cols + ", column " + i % cols + "); quantization needs finite values");
  }
}
