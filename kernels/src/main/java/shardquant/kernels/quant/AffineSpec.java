package shardquant.kernels.quant;

import shardquant.kernels.dtype.DType;

/**
 * The arguments torchao's choose_qparams_affine / quantize_affine / dequantize_affine share: how to
 * map ({@code mapping}), over which blocks ({@code block}), onto which codes ({@code targetDtype}
 * holding {@code quantMin..quantMax}; torch.int4 is int8 storage with -8..7, torch.uint4 uint8 with
 * 0..15), the smallest scale ({@code eps}), the dtypes of scale and zero point, and the zero point's
 * domain. {@code zeroPointDtype} is ignored for {@link ZeroPointDomain#NONE}.
 */
public record AffineSpec(
    MappingType mapping,
    BlockSize block,
    DType targetDtype,
    int quantMin,
    int quantMax,
    double eps,
    DType scaleDtype,
    DType zeroPointDtype,
    ZeroPointDomain domain) {

  public AffineSpec {
    if (mapping == null || block == null || targetDtype == null || scaleDtype == null || domain == null) {
      throw new IllegalArgumentException("mapping, block, targetDtype, scaleDtype and domain are required, got "
          + mapping + ", " + block + ", " + targetDtype + ", " + scaleDtype + ", " + domain);
    }
    if (targetDtype.isFloating() || targetDtype == DType.BOOL || targetDtype == DType.I64) {
      throw new IllegalArgumentException("target dtype must be int8, uint8, int16 or int32, got " + targetDtype);
    }
    if (quantMin > quantMax || quantMin < targetDtype.minValue() || quantMax > targetDtype.maxValue()) {
      throw new IllegalArgumentException("quant range [" + quantMin + ", " + quantMax + "] does not fit "
          + targetDtype + " [" + targetDtype.minValue() + ", " + targetDtype.maxValue() + "]");
    }
    if (!(eps > 0) || Double.isInfinite(eps)) {
      throw new IllegalArgumentException("eps must be positive and finite, got " + eps);
    }
    if (!scaleDtype.quantizable()) {
      throw new IllegalArgumentException("scale dtype must be float32, bfloat16 or float16, got " + scaleDtype);
    }
    if (domain != ZeroPointDomain.NONE && (zeroPointDtype == null || zeroPointDtype == DType.BOOL)) {
      throw new IllegalArgumentException("zero point domain " + domain + " needs a zero point dtype, got " + zeroPointDtype);
    }
    if (domain == ZeroPointDomain.INT && !zeroPointDtype.isFloating()
        && (quantMin < zeroPointDtype.minValue() || quantMax > zeroPointDtype.maxValue())) {
      throw new IllegalArgumentException("zero points in [" + quantMin + ", " + quantMax + "] do not fit " + zeroPointDtype);
    }
    // torchao: _choose_qparams_affine_tinygemm asserts ASYMMETRIC. Its zero point may still be cast to an
    // integer dtype (truncating, as IntxFakeQuantizer's zero_point.to(torch.int32) does).
    if (domain == ZeroPointDomain.FLOAT && mapping != MappingType.ASYMMETRIC) {
      throw new IllegalArgumentException("the FLOAT (tinygemm) zero point domain needs ASYMMETRIC mapping, got " + mapping);
    }
  }

  /**
   * torchao's default eps when none is given: {@code torch.finfo(input.dtype).smallest_normal} since
   * pytorch/ao#4534 ("Use smallest_normal instead of eps to clamp quant scales"), in torchao 0.19. The
   * golden QAT case qat_w_int4_sym_group_* shows it: its all-zero groups have scale 2^-126.
   */
  public static double defaultEps(DType inputDtype) {
    switch (inputDtype) {
      case F32: case BF16: return 0x1p-126;
      case F16: return 0x1p-14;
      default: throw new IllegalArgumentException("no default eps for non-floating dtype " + inputDtype);
    }
  }

  /**
   * The int8 asymmetric per-token activation quantization of 8da4w and
   * Int8DynamicActivationIntxWeightConfig: torchao's {@code _int8_asymm_per_token_quant}
   * (torchao/quantization/quant_api.py): block (1, K), -128..127, eps = float32 eps, float32 scale,
   * int8 zero point.
   */
  public static AffineSpec int8AsymmetricPerToken(long cols) {
    return new AffineSpec(MappingType.ASYMMETRIC, BlockSize.perRow(cols), DType.I8, -128, 127,
        Math.ulp(1.0f), DType.F32, DType.I8, ZeroPointDomain.INT);
  }

  /**
   * tinygemm's int4 weight quantization (Int4WeightOnlyConfig's tinygemm / tile-packed layouts):
   * asymmetric, codes 0..15 stored as int32, group (1, g), FLOAT zero point, scale and zero in the
   * weight's dtype, eps = that dtype's smallest normal.
   */
  public static AffineSpec tinygemmInt4(int groupSize, DType weightDtype) {
    return new AffineSpec(MappingType.ASYMMETRIC, BlockSize.group(groupSize), DType.I32, 0, 15,
        defaultEps(weightDtype), weightDtype, weightDtype, ZeroPointDomain.FLOAT);
  }
}
