package shardquant.kernels.quant;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@code int8-weight-only} and {@code int8-dynamic}: torchao's {@code Int8Tensor.from_hp}
 * (torchao/quantization/quantize_/workflows/int8/int8_tensor.py): symmetric per-channel int8 with a
 * float32 scale [N][1] and int8 zero point [N][1]. The dynamic variant quantizes activations per row
 * at inference time, which changes only the metadata ({@code act_quant_kwargs}).
 */
final class Int8Recipe implements RecipeKernel {
  static final Int8Recipe WEIGHT_ONLY = new Int8Recipe(false);
  static final Int8Recipe DYNAMIC = new Int8Recipe(true);

  private final boolean dynamicActivations;

  private Int8Recipe(boolean dynamicActivations) {
    this.dynamicActivations = dynamicActivations;
  }

  static AffineSpec spec(long cols, DType dtype) {
    return new AffineSpec(MappingType.SYMMETRIC, BlockSize.perRow(cols), DType.I8, -128, 127,
        AffineSpec.defaultEps(dtype), DType.F32, DType.I8, ZeroPointDomain.INT);
  }

  @Override
  public long rowAlignment(long cols, QuantConfig c) {
    return 1;
  }

  @Override
  public String refusal(long rows, long cols, DType dtype, QuantConfig c) {
    return dtype.quantizable() ? null
        : c.recipe().cliName() + " quantizes " + DType.quantizableNames() + " weights, got " + dtype.safetensorsName();
  }

  @Override
  public List<PartSpec> parts(long rows, long cols, DType dtype, QuantConfig c) {
    return List.of(
        new PartSpec("zero_point", DType.I8, new long[] {rows, 1}, 0),
        new PartSpec("qdata", DType.I8, new long[] {rows, cols}, 0),
        new PartSpec("scale", DType.F32, new long[] {rows, 1}, 0));
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    AffineSpec spec = spec(rows.cols(), rows.dtype());
    QParams qp = AffineQuantRef.chooseQParams(rows, spec);
    long[] clipped = new long[Math.toIntExact(rows.rows())];
    Tensor q = AffineQuantRef.quantize(rows, spec, qp, clipped);
    stats.addRows(rows, AffineQuantRef.dequantize(q, spec, qp, rows.dtype()), clipped, rows.rows(), rows.cols());
    long[] perRow = {rows.rows(), 1};
    return QuantizedTensor.of(c, rows.shape(), rows.dtype(),
        Map.of("zero_point", qp.zeroPoint().reshape(perRow), "qdata", q, "scale", qp.scale().reshape(perRow)));
  }

  @Override
  public Tensor dequantize(QuantizedTensor q, DType out) {
    AffineSpec spec = spec(q.shape()[1], q.originalDType());
    return AffineQuantRef.dequantize(q.part("qdata"), spec, new QParams(q.part("scale"), q.part("zero_point")), out);
  }

  @Override
  public ObjectNode torchaoData(long[] shape, DType dtype, QuantConfig c) {
    ObjectNode data = TorchaoMetadata.JSON.objectNode();
    if (dynamicActivations) {
      ObjectNode kwargs = data.putObject("act_quant_kwargs");
      kwargs.put("_type", "QuantizeTensorToInt8Kwargs");
      ObjectNode kw = kwargs.putObject("_data");
      ObjectNode granularity = kw.putObject("granularity");
      granularity.put("_type", "PerRow");
      granularity.putObject("_data").put("dim", -1);
      ObjectNode mapping = kw.putObject("mapping_type");
      mapping.put("_type", "MappingType");
      mapping.put("_data", "SYMMETRIC");
      kw.put("reduce_range", false);
    } else {
      data.putNull("act_quant_kwargs");
    }
    data.put("reduce_range", false);
    data.set("block_size", TorchaoMetadata.ints(1, Math.toIntExact(shape[1])));
    data.set("dtype", TorchaoMetadata.dtype(dtype.torchName()));
    return data;
  }

  /**
   * {@code Int8WeightOnlyConfig()} or {@code Int8DynamicActivationInt8WeightConfig()}: per-row, symmetric
   * activations for the dynamic one, every field at torchao's default.
   */
  @Override
  public ObjectNode torchaoConfig(QuantConfig c) {
    ObjectNode data = TorchaoConfig.fields();
    if (dynamicActivations) {
      data.set("act_mapping_type", TorchaoConfig.mapping(MappingType.SYMMETRIC));
      data.put("weight_only_decode", false);
    } else {
      data.putNull("group_size");
    }
    data.set("granularity", TorchaoConfig.perRow());
    data.put("set_inductor_config", true);
    if (dynamicActivations) {
      data.put("reduce_range", false);
    }
    return TorchaoConfig.object(dynamicActivations ? "Int8DynamicActivationInt8WeightConfig" : "Int8WeightOnlyConfig", 2,
        data);
  }
}
