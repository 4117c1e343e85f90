package shardquant.kernels.quant;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@code 8da4w} and {@code intx-weight-only}: torchao's {@code IntxUnpackedToInt8Tensor.from_hp}
 * (torchao/quantization/quantize_/workflows/intx/intx_unpacked_to_int8_tensor.py): symmetric groupwise
 * quantization to {@code bits}-bit codes stored unpacked as int8, scale in the weight's dtype, int8
 * zero point. 8da4w adds int8 asymmetric per-token activation quantization at inference time, which
 * changes only the metadata.
 */
final class IntxRecipe implements RecipeKernel {
  static final IntxRecipe ACT_INT8 = new IntxRecipe("int8_asym_per_token");
  static final IntxRecipe WEIGHT_ONLY = new IntxRecipe(null);

  private final String activationQuantization;

  private IntxRecipe(String activationQuantization) {
    this.activationQuantization = activationQuantization;
  }

  static AffineSpec spec(QuantConfig c, DType dtype) {
    int half = 1 << (c.bits() - 1);
    return new AffineSpec(MappingType.SYMMETRIC, BlockSize.group(c.groupSize()), DType.I8, -half, half - 1,
        AffineSpec.defaultEps(dtype), dtype, DType.I8, ZeroPointDomain.INT);
  }

  @Override
  public long rowAlignment(long cols, QuantConfig c) {
    return 1;
  }

  @Override
  public String refusal(long rows, long cols, DType dtype, QuantConfig c) {
    if (!dtype.quantizable()) {
      return c.recipe().cliName() + " quantizes " + DType.quantizableNames() + " weights, got " + dtype.safetensorsName();
    }
    if (cols % c.groupSize() != 0) {
      return c.recipe().cliName() + " needs K to be a multiple of the group size " + c.groupSize() + ", got K = " + cols
          + " (torchao does not pad this recipe); choose a group size that divides K";
    }
    return null;
  }

  @Override
  public List<PartSpec> parts(long rows, long cols, DType dtype, QuantConfig c) {
    long groups = cols / c.groupSize();
    return List.of(
        new PartSpec("qdata", DType.I8, new long[] {rows, cols}, 0),
        new PartSpec("scale", dtype, new long[] {rows, groups}, 0),
        new PartSpec("zero_point", DType.I8, new long[] {rows, groups}, 0));
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    AffineSpec spec = spec(c, rows.dtype());
    QParams qp = AffineQuantRef.chooseGroupwiseQParams(rows, spec);
    long[] clipped = new long[Math.toIntExact(rows.rows())];
    Tensor q = AffineQuantRef.quantize(rows, spec, qp, clipped);
    stats.addRows(rows, AffineQuantRef.dequantize(q, spec, qp, rows.dtype()), clipped, rows.rows(), rows.cols());
    return QuantizedTensor.of(c, rows.shape(), rows.dtype(),
        Map.of("qdata", q, "scale", qp.scale(), "zero_point", qp.zeroPoint()));
  }

  @Override
  public Tensor dequantize(QuantizedTensor q, DType out) {
    AffineSpec spec = spec(q.config(), q.originalDType());
    return AffineQuantRef.dequantize(q.part("qdata"), spec, new QParams(q.part("scale"), q.part("zero_point")), out);
  }

  @Override
  public ObjectNode torchaoData(long[] shape, DType dtype, QuantConfig c) {
    ObjectNode data = TorchaoMetadata.JSON.objectNode();
    data.set("target_dtype", TorchaoMetadata.dtype("int" + c.bits()));
    data.set("block_size", TorchaoMetadata.ints(1, c.groupSize()));
    data.set("dtype", TorchaoMetadata.dtype(dtype.torchName()));
    data.put("activation_quantization", activationQuantization);
    return data;
  }

  /**
   * 8da4w: {@code Int8DynamicActivationIntxWeightConfig(weight_dtype=int<bits>, weight_granularity=PerGroup(g))};
   * intx-weight-only: {@code IntxWeightOnlyConfig(weight_dtype=int<bits>, granularity=PerGroup(g))}; both
   * symmetric, scales in the weight's dtype (None), unpacked to int8, affine qparams.
   */
  @Override
  public ObjectNode torchaoConfig(QuantConfig c) {
    boolean act = activationQuantization != null;
    ObjectNode data = TorchaoConfig.fields();
    data.set("weight_dtype", TorchaoMetadata.dtype("int" + c.bits()));
    data.set(act ? "weight_granularity" : "granularity", TorchaoConfig.perGroup(c.groupSize()));
    data.set(act ? "weight_mapping_type" : "mapping_type", TorchaoConfig.mapping(MappingType.SYMMETRIC));
    data.putNull(act ? "weight_scale_dtype" : "scale_dtype");
    if (act) {
      data.set("act_mapping_type", TorchaoConfig.mapping(MappingType.ASYMMETRIC));
    }
    data.set("intx_packing_format", TorchaoConfig.enumValue("IntxPackingFormat", "UNPACKED_TO_INT8"));
    data.set("intx_choose_qparams_algorithm", TorchaoConfig.enumValue("IntxChooseQParamsAlgorithm", "AFFINE"));
    return TorchaoConfig.object(act ? "Int8DynamicActivationIntxWeightConfig" : "IntxWeightOnlyConfig", 2, data);
  }
}
