package shardquant.kernels.quant;

import java.util.Arrays;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * Reference (scalar) torchao 0.19 affine quantization of a 2-D tensor: {@code choose_qparams_affine}
 * (or {@code _choose_qparams_affine_tinygemm} for the FLOAT zero point domain), {@code quantize_affine}
 * and {@code dequantize_affine} (torchao/quantization/quant_primitives.py), bit for bit with PyTorch
 * eager on CUDA for float32, bfloat16 and float16 inputs: every op computes in float32 and rounds its
 * result to its tensor's dtype.
 *
 * <p>The qparams of a block depend on that block alone, so quantizing rows [a, b) of a tensor, with a
 * and b multiples of the block's rows, gives exactly those rows of quantizing the whole tensor, and
 * qparams whose bytes are the matching slice of the whole tensor's (see {@link BlockSize}).
 */
public final class AffineQuantRef {
  private AffineQuantRef() {}

  /** A tensor's codes with the qparams that made them. */
  public record Quantized(Tensor q, QParams qparams) {}

  /**
   * torchao's choose_qparams_affine for the INT and NONE domains (min and max of each block widened
   * to include 0), {@code _choose_qparams_affine_tinygemm} for FLOAT (min and max as they are).
   * Intermediates keep the input's dtype; scale and zero point are cast to their dtypes at the end.
   */
  public static QParams chooseQParams(Tensor input, AffineSpec spec) {
    float[] x = checkedValues(input, spec.block());
    DType d = input.dtype();
    long[] shape = input.shape();
    BlockSize block = spec.block();
    int blocks = Math.toIntExact(block.gridRows(shape) * block.gridCols(shape));
    float[] scale = new float[blocks];
    float[] zero = new float[blocks];
    float epsF = (float) spec.eps();
    float qmin = spec.quantMin();
    float qmax = spec.quantMax();
    // Python scalars as torchao writes them; ATen converts each to float32 for the op.
    float range = (float) ((double) spec.quantMax() - spec.quantMin());
    float halfRange = (float) (((double) spec.quantMax() - spec.quantMin()) / 2);
    float mid = (float) ((spec.quantMax() + (double) spec.quantMin() + 1) / 2);
    float symmetricZero = d.round((int) ((spec.quantMax() + (double) spec.quantMin() + 1) / 2)); // Python int() truncates
    for (int b = 0; b < blocks; b++) {
      float[] minMax = minMax(x, shape, block, b);
      if (spec.domain() == ZeroPointDomain.FLOAT) {
        // Zero need not be exactly representable: tinygemm keeps the block's own range.
        float s = clampMin(d.round(d.round(minMax[1] - minMax[0]) / range), epsF, d);
        scale[b] = s;
        zero[b] = d.round(minMax[0] + d.round(s * mid));
        continue;
      }
      float minNeg = Math.min(minMax[0], 0f);
      float maxPos = Math.max(minMax[1], 0f);
      switch (spec.mapping()) {
        case SYMMETRIC:
          scale[b] = clampMin(d.round(Math.max(-minNeg, maxPos) / halfRange), epsF, d);
          zero[b] = symmetricZero;
          break;
        case SYMMETRIC_NO_CLIPPING_ERR: {
          float smin = d.round(minNeg / qmin);
          float smax = d.round(maxPos / qmax);
          scale[b] = clampMin(smin > smax ? smin : smax, epsF, d);
          zero[b] = symmetricZero;
          break;
        }
        default: {
          float s = clampMin(d.round(d.round(maxPos - minNeg) / range), epsF, d);
          float z = d.round(qmin - (float) Math.rint(d.round(minNeg / s)));
          scale[b] = s;
          zero[b] = z < qmin ? qmin : (qmax < z ? qmax : z);
          break;
        }
      }
    }
    long[] qshape = block.qparamShape(shape);
    Tensor scaleTensor = Tensor.fromFloats(spec.scaleDtype(), qshape, scale);
    if (spec.domain() == ZeroPointDomain.NONE) {
      return new QParams(scaleTensor, null);
    }
    DType z = spec.zeroPointDtype();
    return new QParams(scaleTensor, cast(Tensor.fromFloats(d, qshape, zero), z));
  }

  /**
   * {@link #chooseQParams} with scale and zero point shaped [N / rows, K / cols], as torchao's groupwise
   * callers hold them whatever the number of groups: get_groupwise_affine_qparams and
   * get_group_qparams_symmetric ({@code reshape(w.shape[0], -1)}), Int4TilePackedTo4dTensor.from_hp (the same
   * reshape before pack_tinygemm_scales_and_zeros), IntxUnpackedToInt8Tensor.from_hp ({@code keepdim=True}).
   * The primitive itself drops a dimension one block covers whole, so a row of exactly one group (K = g)
   * gives it [N]; these callers keep [N, 1].
   */
  public static QParams chooseGroupwiseQParams(Tensor input, AffineSpec spec) {
    QParams qp = chooseQParams(input, spec);
    long[] grid = {spec.block().gridRows(input.shape()), spec.block().gridCols(input.shape())};
    return new QParams(qp.scale().reshape(grid), qp.zeroPoint() == null ? null : qp.zeroPoint().reshape(grid));
  }

  /** torchao's quantize_affine (INT), quantize_affine_no_zero_point (NONE) or _quantize_affine_tinygemm (FLOAT). */
  public static Tensor quantize(Tensor input, AffineSpec spec, QParams qparams) {
    return quantize(input, spec, qparams, new long[Math.toIntExact(input.shape()[0])]);
  }

  /**
   * {@link #quantize(Tensor, AffineSpec, QParams)}, also counting per row the elements whose code fell
   * outside [quant_min, quant_max] before the clamp: the clipped fraction of verification.
   */
  public static Tensor quantize(Tensor input, AffineSpec spec, QParams qparams, long[] clippedPerRow) {
    float[] x = checkedValues(input, spec.block());
    long[] shape = input.shape();
    if (clippedPerRow.length != shape[0]) {
      throw new IllegalArgumentException("clipped counts for " + clippedPerRow.length + " rows, input has " + shape[0]);
    }
    AffineElementwise ops = elementwise(input.dtype(), spec, qparams, shape);
    int[] q = new int[x.length];
    int cols = (int) shape[1];
    for (int i = 0; i < x.length; i++) {
      float code = ops.unclamped(blockOf(i, cols, shape, spec.block()), x[i]);
      if (!ops.inRange(code)) {
        clippedPerRow[i / cols]++;
      }
      q[i] = (int) ops.clamp(code);
    }
    return Tensor.fromInts(spec.targetDtype(), shape, q);
  }

  /** torchao's dequantize_affine (INT), dequantize_affine_no_zero_point (NONE) or _dequantize_affine_tinygemm (FLOAT). */
  public static Tensor dequantize(Tensor q, AffineSpec spec, QParams qparams, DType outputDtype) {
    if (q.dtype() != spec.targetDtype()) {
      throw new IllegalArgumentException("codes are " + q.dtype() + " but the spec's target dtype is " + spec.targetDtype());
    }
    checkFloating(outputDtype, "output");
    long[] shape = q.shape();
    spec.block().check(shape);
    AffineElementwise ops = elementwise(outputDtype, spec, qparams, shape);
    float[] out = new float[Math.toIntExact(q.numel())];
    int cols = (int) shape[1];
    for (int i = 0; i < out.length; i++) {
      out[i] = ops.dequantize(blockOf(i, cols, shape, spec.block()), q.getInt(i), q.dtype(), outputDtype);
    }
    return Tensor.fromFloats(outputDtype, shape, out);
  }

  /** Chooses qparams for {@code input} and quantizes it. */
  public static Quantized chooseAndQuantize(Tensor input, AffineSpec spec) {
    QParams qparams = chooseQParams(input, spec);
    return new Quantized(quantize(input, spec, qparams), qparams);
  }

  /** torchao's {@code _int8_asymm_per_token_quant}, the dynamic activation quantization of 8da4w. */
  public static Quantized int8AsymmetricPerToken(Tensor x) {
    if (x.rank() != 2) {
      throw new IllegalArgumentException("per-token quantization takes a 2-D [tokens, features] tensor, got " + x);
    }
    return chooseAndQuantize(x, AffineSpec.int8AsymmetricPerToken(x.cols()));
  }

  /** Block number (row-major over the block grid) of flat element {@code i} of a [rows, cols] tensor. */
  static int blockOf(int i, int cols, long[] shape, BlockSize block) {
    int r = i / cols;
    int c = i % cols;
    return (r / block.rows()) * (int) block.gridCols(shape) + c / block.cols();
  }

  /**
   * The element-wise ops for {@code values} of dtype {@code valueDtype} (the input when quantizing, the
   * output when dequantizing), after checking the qparams fit the spec and shape.
   */
  static AffineElementwise elementwise(DType valueDtype, AffineSpec spec, QParams qparams, long[] shape) {
    long blocks = spec.block().gridRows(shape) * spec.block().gridCols(shape);
    Tensor scale = qparams.scale();
    if (scale.numel() != blocks || !scale.dtype().quantizable()) {
      throw new IllegalArgumentException("scale " + scale + " does not fit " + blocks + " blocks " + spec.block()
          + " of shape " + Arrays.toString(shape) + " (need a floating tensor of " + blocks + " values)");
    }
    Tensor zero = qparams.zeroPoint();
    if ((spec.domain() == ZeroPointDomain.NONE) != (zero == null)) {
      throw new IllegalArgumentException("zero point domain " + spec.domain() + " takes "
          + (zero == null ? "a zero point, got none" : "no zero point, got " + zero));
    }
    float[] zeroValues = zero == null ? null : zero.toFloats();
    return new AffineElementwise(valueDtype, spec, scale.toFloats(), scale.dtype(), zeroValues,
        zero == null ? null : zero.dtype());
  }

  /**
   * The values of a 2-D floating tensor of whole blocks. NaN and infinity are refused: torch would
   * turn them into undefined integer codes.
   */
  static float[] checkedValues(Tensor input, BlockSize block) {
    checkFloating(input.dtype(), "input");
    block.check(input.shape());
    float[] x = input.toFloats();
    for (int i = 0; i < x.length; i++) {
      if (!Float.isFinite(x[i])) {
        throw new IllegalArgumentException("input " + input + " holds " + x[i] + " at flat index " + i
            + " (row " + i / input.shape()[1] + ", column " + i % input.shape()[1] + "); quantization needs finite values");
      }
    }
    return x;
  }

  private static void checkFloating(DType d, String what) {
    if (d != DType.F32 && d != DType.BF16 && d != DType.F16) {
      throw new IllegalArgumentException(what + " dtype must be float32, bfloat16 or float16, got " + d);
    }
  }

  /** torch.clamp(v, min=eps) as ATen's CUDA clamp_min_scalar kernel: compare in float32, store eps in v's dtype. */
  private static float clampMin(float v, float eps, DType d) {
    return v < eps ? d.round(eps) : v;
  }

  private static float[] minMax(float[] x, long[] shape, BlockSize block, int b) {
    int cols = (int) shape[1];
    int gridCols = (int) block.gridCols(shape);
    int r0 = (b / gridCols) * block.rows();
    int c0 = (b % gridCols) * block.cols();
    float min = Float.POSITIVE_INFINITY;
    float max = Float.NEGATIVE_INFINITY;
    for (int r = r0; r < r0 + block.rows(); r++) {
      for (int c = c0; c < c0 + block.cols(); c++) {
        float v = x[r * cols + c];
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
    }
    return new float[] {min, max};
  }

  /**
   * torch's {@code Tensor.to(dtype)} from a floating tensor: rounding into a floating dtype, truncation
   * toward zero into an integer one (a value the integer dtype cannot hold is an error, not wrapped).
   */
  static Tensor cast(Tensor t, DType to) {
    if (t.dtype() == to) {
      return t;
    }
    float[] v = t.toFloats();
    if (to.isFloating()) {
      return Tensor.fromFloats(to, t.shape(), v);
    }
    int[] out = new int[v.length];
    for (int i = 0; i < v.length; i++) {
      if (!(v[i] > to.minValue() - 1.0 && v[i] < to.maxValue() + 1.0)) {
        throw new IllegalArgumentException("value " + v[i] + " at index " + i + " of " + t + " does not fit " + to);
      }
      out[i] = (int) v[i];
    }
    return Tensor.fromInts(to, t.shape(), out);
  }
}
