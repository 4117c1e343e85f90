package shardquant.kernels.quant;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.layout.TinygemmScaleZero;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * tinygemm's asymmetric int4 quantization, stored in one {@link Int4Layout}: {@code int4-tile-packed} is
 * torchao's {@code Int4TilePackedTo4dTensor.from_hp}
 * (torchao/quantization/quantize_/workflows/int4/int4_tile_packed_to_4d_tensor.py), {@code int4-cpu} its
 * {@code Int4OpaqueTensor} for PyTorch's CPU kernel. The bf16 weight is zero-padded to the layout's stored
 * size (tile-packed: N a multiple of 8, K of 1024; cpu: none, and it refuses N off a multiple of 16),
 * quantized with tinygemm's uint4 scheme, packed by the layout, and its scale and zero stored as tinygemm's
 * {@code scale_and_zero} [K'/g][N'][2].
 *
 * <p>A row shard is whole row units of the layout (its qdata's outer rows); its {@code scale_and_zero} is
 * the slice along dimension 1. Only the tensor's last shard can end off a unit, and it is padded exactly as
 * the whole tensor would be.
 */
public final class TinygemmInt4Recipe implements RecipeKernel {
  private static final Map<Int4Layout, TinygemmInt4Recipe> BY_LAYOUT = new EnumMap<>(Int4Layout.class);

  static {
    for (Int4Layout l : Int4Layout.values()) {
      BY_LAYOUT.put(l, new TinygemmInt4Recipe(l));
    }
  }

  private final Int4Layout layout;

  private TinygemmInt4Recipe(Int4Layout layout) {
    this.layout = layout;
  }

  /** The recipe kernel storing {@code layout} (for the {@link Recipe} table's rows). */
  static TinygemmInt4Recipe of(Int4Layout layout) {
    return BY_LAYOUT.get(layout);
  }

  public Int4Layout layout() {
    return layout;
  }

  @Override
  public long rowAlignment(long cols, QuantConfig c) {
    return layout.rowAlignment();
  }

  @Override
  public String refusal(long rows, long cols, DType dtype, QuantConfig c) {
    String shape = layout.refusal(rows, cols, c.groupSize());
    if (shape != null) {
      return c.recipe().cliName() + ": " + shape;
    }
    if (dtype != DType.BF16) {
      return c.recipe().cliName() + " needs bfloat16 weights (tinygemm stores bf16 scales and zeros), got "
          + dtype.torchName() + "; convert the checkpoint to bf16 or use 8da4w";
    }
    return null;
  }

  @Override
  public List<PartSpec> parts(long rows, long cols, DType dtype, QuantConfig c) {
    return layout.parts(rows, cols, c.groupSize());
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    int n = Math.toIntExact(layout.storedRows(rows.rows()));
    int k = Math.toIntExact(layout.storedCols(rows.cols()));
    UnpackedInt4 q = quantize(rows.resized(n, k), rows.rows(), rows.cols(), c, stats);
    Map<String, Tensor> parts = layout.pack(q);
    PackingCheck.roundTrip(layout.cliName() + " qdata", q.codes(), layout.unpackCodes(parts.get("qdata"), n, k));
    return QuantizedTensor.of(c, rows.shape(), rows.dtype(), parts);
  }

  /** Quantizes {@code padded}; verification covers its top-left {@code rows x cols}, the real weight. */
  private static UnpackedInt4 quantize(Tensor padded, long rows, long cols, QuantConfig c, QuantStats stats) {
    AffineSpec spec = AffineSpec.tinygemmInt4(c.groupSize(), padded.dtype());
    QParams qp = AffineQuantRef.chooseGroupwiseQParams(padded, spec);
    long[] clipped = new long[Math.toIntExact(padded.rows())];
    Tensor q = AffineQuantRef.quantize(padded, spec, qp, clipped);
    stats.addRows(padded, AffineQuantRef.dequantize(q, spec, qp, padded.dtype()), clipped, rows, cols);
    return new UnpackedInt4(Math.toIntExact(padded.rows()), Math.toIntExact(padded.cols()), c.groupSize(), q.toInts(),
        qp.scale(), qp.zeroPoint());
  }

  /** tinygemm's dequantization of the stored codes (at the stored size N' x K'), cropped to the original shape. */
  @Override
  public Tensor dequantize(QuantizedTensor q, DType out) {
    Tensor sz = q.part("scale_and_zero");
    int n = Math.toIntExact(sz.shape()[1]);
    int k = Math.toIntExact(sz.shape()[0] * q.config().groupSize());
    int[] codes = layout.unpackCodes(q.part("qdata"), n, k);
    AffineSpec spec = AffineSpec.tinygemmInt4(q.config().groupSize(), DType.BF16);
    QParams qp = new QParams(TinygemmScaleZero.scale(sz), TinygemmScaleZero.zero(sz));
    Tensor dq = AffineQuantRef.dequantize(Tensor.fromInts(DType.I32, new long[] {n, k}, codes), spec, qp, out);
    long[] shape = q.shape();
    return dq.resized(shape[0], shape[1]);
  }

  @Override
  public ObjectNode torchaoData(long[] shape, DType dtype, QuantConfig c) {
    return layout.torchaoData(shape, c.groupSize());
  }

  /**
   * {@code Int4WeightOnlyConfig(group_size, int4_packing_format=...)}, the other fields at their defaults;
   * null for a layout no torchao config loads.
   */
  @Override
  public ObjectNode torchaoConfig(QuantConfig c) {
    if (layout.torchaoPackingFormat() == null) {
      return null;
    }
    ObjectNode data = TorchaoConfig.fields();
    data.put("group_size", c.groupSize());
    data.put("set_inductor_config", true);
    data.set("int4_packing_format", TorchaoConfig.enumValue("Int4PackingFormat", layout.torchaoPackingFormat()));
    data.set("int4_choose_qparams_algorithm", TorchaoConfig.enumValue("Int4ChooseQParamsAlgorithm", "TINYGEMM"));
    data.put("int4_tile_packed_ntile", 8);
    return TorchaoConfig.object("Int4WeightOnlyConfig", 2, data);
  }
}
