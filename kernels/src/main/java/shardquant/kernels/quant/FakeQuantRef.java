package shardquant.kernels.quant;

import java.util.Arrays;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * Reference torchao 0.19 QAT fake quantization: {@code IntxFakeQuantizer.forward}
 * (torchao/quantization/qat/fake_quantizer.py) on a 2-D tensor and the gradient autograd gives its
 * input. Forward is quantize then dequantize without the dtype casts ({@code _fake_quantize_affine}
 * in quant_primitives.py, reached through qat/utils.py's {@code _fake_quantize_per_channel_group} and
 * {@code _fake_quantize_per_token}); backward is autograd through those same element-wise ops
 * (straight-through rounding, torchao's {@code _Round}), see {@link AffineElementwise#gradient}.
 *
 * <p>How IntxFakeQuantizer picks its qparams, which is not always what the config suggests:
 * <ul>
 * <li>per token: choose_qparams_affine, ASYMMETRIC, block (1, K), eps default
 *     finfo(x.dtype).smallest_normal; always the INT domain (the config's domain is not passed on);
 * <li>per channel / group, symmetric: get_group_qparams_symmetric, i.e. choose_qparams_affine
 *     SYMMETRIC with the signed range of the bit width, zero point in the scale's dtype, eps default
 *     finfo(x.dtype).smallest_normal (golden: all-zero groups get scale 2^-126);
 * <li>per channel / group, asymmetric: get_groupwise_affine_qparams, i.e. the tinygemm qparams
 *     (min and max not widened to 0, zero = min + scale * mid) with range 0..2^bits-1 and eps default
 *     1e-6, whatever the config's zero point domain;
 * <li>then {@code zero_point.to(zero_point_precision)}: with the usual int32 precision a FLOAT domain
 *     zero point is truncated toward zero (golden qat_w_uint4_asym_group_float_zero: zero points 0 and 1).
 * </ul>
 */
public final class FakeQuantRef {
  private FakeQuantRef() {}

  /** torchao's get_groupwise_affine_qparams default eps. */
  static final double GROUPWISE_AFFINE_EPS = 1e-6;

  /** The fake-quantized tensor, the qparams the quantizer holds, and what backward needs. */
  public static final class FakeQuantized {
    private final Tensor y;
    private final QParams qparams;
    private final AffineElementwise ops;
    private final BlockSize block;
    private final boolean[] inRange;

    private FakeQuantized(Tensor y, QParams qparams, AffineElementwise ops, BlockSize block, boolean[] inRange) {
      this.y = y;
      this.qparams = qparams;
      this.ops = ops;
      this.block = block;
      this.inRange = inRange;
    }

    public Tensor y() {
      return y;
    }

    /** Scale ([N] per token, [N, K / group] otherwise) and zero point in the config's precisions. */
    public QParams qparams() {
      return qparams;
    }

    /** The gradient of the input for the gradient {@code gradOut} of {@link #y()}. */
    public Tensor backward(Tensor gradOut) {
      if (gradOut.dtype() != y.dtype() || !Arrays.equals(gradOut.shape(), y.shape())) {
        throw new IllegalArgumentException("gradient " + gradOut + " does not match output " + y);
      }
      long[] shape = y.shape();
      int cols = (int) shape[1];
      float[] g = gradOut.toFloats();
      float[] out = new float[g.length];
      for (int i = 0; i < g.length; i++) {
        out[i] = ops.gradient(AffineQuantRef.blockOf(i, cols, shape, block), g[i], inRange[i], y.dtype());
      }
      return Tensor.fromFloats(y.dtype(), shape, out);
    }
  }

  /** IntxFakeQuantizer(config).forward(x) for a 2-D {@code x}. */
  public static FakeQuantized forward(Tensor x, FakeQuantConfig config) {
    if (x.rank() != 2) {
      throw new IllegalArgumentException("fake quantization takes a 2-D tensor, got " + x);
    }
    long[] shape = x.shape();
    AffineSpec qparamSpec = qparamSpec(config, x.dtype(), shape[1]);
    // Per token: choose_qparams_affine's own [N]; per channel and group: get_group(wise)_..._qparams' [N, K / g].
    QParams chosen = config.granularity() == FakeQuantConfig.Granularity.PER_TOKEN
        ? AffineQuantRef.chooseQParams(x, qparamSpec)
        : AffineQuantRef.chooseGroupwiseQParams(x, qparamSpec);
    QParams held = new QParams(chosen.scale(), AffineQuantRef.cast(chosen.zeroPoint(), config.zeroPointPrecision()));

    // torchao fakes with quant_dtype=torch.int32 and the config dtype's bounds; per token always INT.
    ZeroPointDomain domain = config.granularity() == FakeQuantConfig.Granularity.PER_TOKEN
        ? ZeroPointDomain.INT : config.domain();
    AffineSpec fakeSpec = new AffineSpec(qparamSpec.mapping(), qparamSpec.block(), DType.I32,
        config.quantMin(), config.quantMax(), qparamSpec.eps(), config.scalePrecision(),
        config.zeroPointPrecision(), domain);
    float[] xs = AffineQuantRef.checkedValues(x, fakeSpec.block());
    AffineElementwise ops = AffineQuantRef.elementwise(x.dtype(), fakeSpec, held, shape);
    int cols = (int) shape[1];
    float[] y = new float[xs.length];
    boolean[] inRange = new boolean[xs.length];
    for (int i = 0; i < xs.length; i++) {
      int b = AffineQuantRef.blockOf(i, cols, shape, fakeSpec.block());
      float d = ops.unclamped(b, xs[i]);
      inRange[i] = ops.inRange(d);
      y[i] = ops.dequantize(b, ops.clamp(d), ops.codeDtype(), x.dtype());
    }
    return new FakeQuantized(Tensor.fromFloats(x.dtype(), shape, y), held, ops, fakeSpec.block(), inRange);
  }

  /**
   * The choose-qparams call IntxFakeQuantizer makes for {@code config}; its zero point comes out in
   * the dtype torchao computes it in, before the cast to zero_point_precision.
   */
  static AffineSpec qparamSpec(FakeQuantConfig config, DType inputDtype, long cols) {
    switch (config.granularity()) {
      case PER_TOKEN:
        return new AffineSpec(MappingType.ASYMMETRIC, BlockSize.perRow(cols), config.storageDtype(),
            config.quantMin(), config.quantMax(), eps(config, AffineSpec.defaultEps(inputDtype)),
            config.scalePrecision(), config.zeroPointPrecision(), ZeroPointDomain.INT);
      default: {
        int group = config.granularity() == FakeQuantConfig.Granularity.PER_GROUP ? config.groupSize() : (int) cols;
        if (group < 2 || cols % group != 0) {
          throw new IllegalArgumentException(cols + " columns are not whole groups of " + group
              + " (torchao asserts group_size > 1 and K % group_size == 0)");
        }
        int bits = config.bits();
        if (config.mapping() == MappingType.SYMMETRIC) {
          return new AffineSpec(MappingType.SYMMETRIC, BlockSize.group(group), DType.I8,
              -(1 << (bits - 1)), (1 << (bits - 1)) - 1, eps(config, AffineSpec.defaultEps(inputDtype)),
              config.scalePrecision(), config.scalePrecision(), ZeroPointDomain.INT);
        }
        return new AffineSpec(MappingType.ASYMMETRIC, BlockSize.group(group), DType.I32,
            0, (1 << bits) - 1, eps(config, GROUPWISE_AFFINE_EPS),
            config.scalePrecision(), config.scalePrecision(), ZeroPointDomain.FLOAT);
      }
    }
  }

  private static double eps(FakeQuantConfig config, double fallback) {
    return config.eps() != null ? config.eps() : fallback;
  }
}
