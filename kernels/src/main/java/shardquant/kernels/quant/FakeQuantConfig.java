package shardquant.kernels.quant;

import shardquant.kernels.dtype.DType;

/**
 * What torchao's {@code IntxFakeQuantizeConfig} (torchao/quantization/qat/fake_quantize_config.py)
 * says for dynamic QAT without range learning: the code dtype ({@code bits} wide, signed like
 * torch.int4 or unsigned like torch.uint4), the granularity, the mapping, the dtypes of scale and
 * zero point, the zero point domain and eps ({@code null}: torchao's default for the path, see
 * {@link FakeQuantRef}).
 */
public record FakeQuantConfig(
    int bits,
    boolean unsigned,
    Granularity granularity,
    int groupSize,
    MappingType mapping,
    DType scalePrecision,
    DType zeroPointPrecision,
    ZeroPointDomain domain,
    Double eps) {

  /** torchao's PerToken, PerAxis(0) and PerGroup(group_size). */
  public enum Granularity { PER_TOKEN, PER_CHANNEL, PER_GROUP }

  public FakeQuantConfig {
    if (bits < 1 || bits > 8) {
      throw new IllegalArgumentException("fake quantization supports 1 to 8 bit codes, got " + bits);
    }
    if (granularity == null || mapping == null || scalePrecision == null || zeroPointPrecision == null || domain == null) {
      throw new IllegalArgumentException("granularity, mapping, precisions and domain are required, got " + granularity
          + ", " + mapping + ", " + scalePrecision + ", " + zeroPointPrecision + ", " + domain);
    }
    if (granularity == Granularity.PER_GROUP && groupSize < 2) {
      throw new IllegalArgumentException("group size must be at least 2 (torchao asserts group_size > 1), got " + groupSize);
    }
    if (mapping == MappingType.SYMMETRIC_NO_CLIPPING_ERR) {
      // IntxFakeQuantizer computes per-group qparams with get_group_qparams_symmetric's default SYMMETRIC
      // mapping whatever the config says; refusing is better than silently using another mapping.
      throw new IllegalArgumentException("IntxFakeQuantizer does not apply SYMMETRIC_NO_CLIPPING_ERR; use SYMMETRIC or ASYMMETRIC");
    }
    if (granularity == Granularity.PER_TOKEN && mapping != MappingType.ASYMMETRIC) {
      throw new IllegalArgumentException("torchao: symmetric per token is not supported yet (IntxFakeQuantizer), got " + mapping);
    }
    if (domain == ZeroPointDomain.NONE) {
      throw new IllegalArgumentException("IntxFakeQuantizer fakes INT or FLOAT zero points, not NONE");
    }
    if (!scalePrecision.quantizable()) {
      throw new IllegalArgumentException("scale precision must be float32, bfloat16 or float16, got " + scalePrecision);
    }
    if (eps != null && !(eps > 0 && !eps.isInfinite())) {
      throw new IllegalArgumentException("eps must be positive and finite or null, got " + eps);
    }
  }

  /** Smallest code (torchao's _DTYPE_TO_QVALUE_BOUNDS). */
  public int quantMin() {
    return unsigned ? 0 : -(1 << (bits - 1));
  }

  /** Largest code. */
  public int quantMax() {
    return unsigned ? (1 << bits) - 1 : (1 << (bits - 1)) - 1;
  }

  /** The integer dtype that holds the codes when the weight is quantized for real. */
  public DType storageDtype() {
    return unsigned ? DType.U8 : DType.I8;
  }
}
