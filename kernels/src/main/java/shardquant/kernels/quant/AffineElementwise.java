package shardquant.kernels.quant;

import shardquant.kernels.dtype.DType;

/**
 * The element-wise steps of torchao's quantize/dequantize with PyTorch eager numerics, shared by
 * {@link AffineQuantRef} and {@link FakeQuantRef}. Each torch op computes in float32 (Java float
 * arithmetic rounds the same way, division included: PyTorch 2.11 divides by a tensor or a Python
 * scalar with a correctly rounded float32 division) and rounds its result to the dtype PyTorch's type
 * promotion gives it; the dtype of every step is fixed once in the constructor.
 *
 * <p>Sources (torchao 0.19, torchao/quantization/quant_primitives.py):
 * INT: {@code _quantize_affine_no_dtype_cast}: clamp(round(x * (1.0 / scale)) + zero_point) and
 * {@code _dequantize_affine_no_dtype_check}: (q.to(out) - zero_point.to(out)) * scale;
 * NONE: the same without zero point ({@code _quantize_affine_no_zero_point_no_dtype_cast});
 * FLOAT: {@code _quantize_affine_tinygemm_no_dtype_cast}: clamp(round((x - (zero - scale * mid)) / scale))
 * and {@code _dequantize_affine_tinygemm_no_dtype_check}: ((q - mid).to(out) * scale) + zero.
 */
final class AffineElementwise {
  private final ZeroPointDomain domain;
  private final DType input;
  private final DType scaleDtype;
  private final float[] scale;
  private final float[] zero;
  private final float quantMin;
  private final float quantMax;
  /** (quant_max + quant_min + 1) / 2, the FLOAT domain's midpoint, a Python float. */
  private final float mid;
  /** INT/NONE: dtype of x * (1 / scale). FLOAT: dtype of zero - scale * mid. */
  private final DType firstDtype;
  /** FLOAT: dtype of x - min_val. */
  private final DType diffDtype;
  /** Dtype of the code before torchao's final .to(target): what fake quantization carries on with. */
  private final DType codeDtype;

  /** {@code scale} and {@code zero} hold one value per block; {@code zero} is ignored for NONE. */
  AffineElementwise(DType input, AffineSpec spec, float[] scale, DType scaleDtype, float[] zero, DType zeroDtype) {
    this.domain = spec.domain();
    this.input = input;
    this.scaleDtype = scaleDtype;
    this.scale = scale;
    this.zero = zero;
    this.quantMin = spec.quantMin();
    this.quantMax = spec.quantMax();
    this.mid = (float) ((spec.quantMax() + (double) spec.quantMin() + 1) / 2);
    switch (domain) {
      case INT:
        firstDtype = promote(input, scaleDtype);
        diffDtype = null;
        codeDtype = promote(firstDtype, zeroDtype);
        break;
      case NONE:
        firstDtype = promote(input, scaleDtype);
        diffDtype = null;
        codeDtype = firstDtype;
        break;
      default:
        firstDtype = promote(zeroDtype, scaleDtype);
        diffDtype = promote(input, firstDtype);
        codeDtype = promote(diffDtype, scaleDtype);
        break;
    }
  }

  /** PyTorch's result dtype of a binary op between two tensors of at least one dimension. */
  static DType promote(DType a, DType b) {
    if (!b.isFloating() || a == b) {
      return a;
    }
    if (!a.isFloating()) {
      return b;
    }
    return DType.F32; // bf16 with f16, or either with f32
  }

  DType codeDtype() {
    return codeDtype;
  }

  /** The code of {@code x} in block {@code b} before the clamp, rounded (a whole number) or NaN. */
  float unclamped(int b, float x) {
    float s = scale[b];
    switch (domain) {
      case INT: {
        float r = (float) Math.rint(firstDtype.round(x * reciprocal(b)));
        return codeDtype.round(r + zero[b]);
      }
      case NONE:
        return (float) Math.rint(firstDtype.round(x * reciprocal(b)));
      default: {
        float minVal = firstDtype.round(zero[b] - scaleDtype.round(s * mid));
        float diff = diffDtype.round(x - minVal);
        return (float) Math.rint(codeDtype.round(diff / s));
      }
    }
  }

  /** torch.clamp(d, quant_min, quant_max) as ATen's CUDA clamp_scalar kernel does it; NaN passes. */
  float clamp(float d) {
    float low = d < quantMin ? quantMin : d;
    return quantMax < low ? quantMax : low;
  }

  /** Whether the clamp left {@code d} alone: torch's clamp backward passes the gradient only there. */
  boolean inRange(float d) {
    return d >= quantMin && d <= quantMax;
  }

  /** Dequantizes code {@code q}, held in {@code qDtype} (the target integer dtype, or codeDtype()), into {@code out}. */
  float dequantize(int b, float q, DType qDtype, DType out) {
    float s = scale[b];
    switch (domain) {
      case INT: {
        float diff = out.round(out.round(q) - out.round(zero[b]));
        return out.round(promote(out, scaleDtype).round(diff * s));
      }
      case NONE:
        return out.round(promote(out, scaleDtype).round(out.round(q) * s));
      default: {
        // An integer tensor minus a Python float is float32; a float code keeps its dtype.
        DType subDtype = qDtype.isFloating() ? qDtype : DType.F32;
        float d = out.round(subDtype.round(q - mid));
        d = out.round(d * s); // in place: dequant *= scale keeps out's dtype
        return out.round(d + zero[b]); // in place: dequant += zero_point
      }
    }
  }

  /**
   * The gradient autograd gives {@code x} for the gradient {@code gradOut} of the dequantized output
   * ({@code out} dtype, the input's own for fake quantization): the multiply (INT, NONE) or divide
   * (FLOAT) by scale of each direction, each rounded to the dtype of the tensor it is the gradient of,
   * zero where the clamp clipped, rounding passed straight through (torchao's _Round), nothing for
   * scale and zero point.
   */
  float gradient(int b, float gradOut, boolean inRange, DType out) {
    float s = scale[b];
    float g = inRange ? out.round(gradOut * s) : 0f;
    if (domain == ZeroPointDomain.FLOAT) {
      return input.round(diffDtype.round(g / s));
    }
    return input.round(g * reciprocal(b));
  }

  /** torchao's {@code 1.0 / scale}: torch.reciprocal of the scale tensor, in the scale's dtype. */
  private float reciprocal(int b) {
    return scaleDtype.round(1f / scale[b]);
  }
}
