package shardquant.kernels.quant;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.layout.TensorCoreTiledInt4Layout;
import shardquant.kernels.layout.TinygemmScaleZero;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@code int4-tile-packed}: torchao's {@code Int4TilePackedTo4dTensor.from_hp}
 * (torchao/quantization/quantize_/workflows/int4/int4_tile_packed_to_4d_tensor.py). The bf16 weight is
 * zero-padded to N a multiple of 8 and K a multiple of 1024, quantized with tinygemm's asymmetric
 * uint4 scheme, packed by {@code aten._convert_weight_to_int4pack} with inner_k_tiles 8, and its
 * scale and zero stored as tinygemm's {@code scale_and_zero} [K/g][N][2].
 *
 * <p>A row shard is 8-row tiles (the outer dimension of {@code qdata}); its {@code scale_and_zero}
 * is the slice along dimension 1. Only the tensor's last shard can end off a multiple of 8, and it is
 * padded exactly as the whole tensor would be.
 */
final class Int4TilePackedRecipe implements RecipeKernel {
  static final Int4TilePackedRecipe INSTANCE = new Int4TilePackedRecipe();
  static final int INNER_K_TILES = 8;
  static final int K_MULTIPLE = 1024;
  static final int N_MULTIPLE = 8;

  private Int4TilePackedRecipe() {}

  @Override
  public long rowAlignment(long cols, QuantConfig c) {
    return N_MULTIPLE;
  }

  @Override
  public String refusal(long rows, long cols, DType dtype, QuantConfig c) {
    return TinygemmInt4.refusal(dtype, c);
  }

  @Override
  public List<PartSpec> parts(long rows, long cols, DType dtype, QuantConfig c) {
    long n = roundUp(rows, N_MULTIPLE);
    long k = roundUp(cols, K_MULTIPLE);
    return List.of(
        new PartSpec("qdata", DType.I32, TensorCoreTiledInt4Layout.packedShape(Math.toIntExact(n), Math.toIntExact(k),
            INNER_K_TILES), 0),
        new PartSpec("scale_and_zero", DType.BF16, new long[] {k / c.groupSize(), n, 2}, 1));
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    int n = Math.toIntExact(roundUp(rows.rows(), N_MULTIPLE));
    int k = Math.toIntExact(roundUp(rows.cols(), K_MULTIPLE));
    TinygemmInt4.Codes q = TinygemmInt4.quantize(rows.resized(n, k), rows.rows(), rows.cols(), c, stats);
    Map<String, Tensor> parts = new LinkedHashMap<>();
    int[] words = TensorCoreTiledInt4Layout.pack(q.codes(), n, k, INNER_K_TILES);
    PackingCheck.roundTrip("tile-packed qdata", q.codes(), TensorCoreTiledInt4Layout.unpack(words, n, k, INNER_K_TILES));
    parts.put("qdata", Tensor.fromInts(DType.I32, TensorCoreTiledInt4Layout.packedShape(n, k, INNER_K_TILES), words));
    parts.put("scale_and_zero", TinygemmScaleZero.pack(q.scale(), q.zero()));
    return new QuantizedTensor(c, rows.shape(), rows.dtype(), parts);
  }

  @Override
  public Tensor dequantize(QuantizedTensor q, DType out) {
    Tensor sz = q.part("scale_and_zero");
    int n = Math.toIntExact(sz.shape()[1]);
    int k = Math.toIntExact(sz.shape()[0] * q.config().groupSize());
    int[] codes = TensorCoreTiledInt4Layout.unpack(q.part("qdata").toInts(), n, k, INNER_K_TILES);
    return TinygemmInt4.dequantize(codes, n, k, sz, q.shape(), q.config(), out);
  }

  @Override
  public ObjectNode torchaoData(long[] shape, DType dtype, QuantConfig c) {
    return TorchaoMetadata.blockAndShape(new int[] {1, c.groupSize()}, shape);
  }

  static long roundUp(long x, long multiple) {
    return (x + multiple - 1) / multiple * multiple;
  }

  /** {@code Int4WeightOnlyConfig(group_size, int4_packing_format="tile_packed_to_4d")}, the other fields at their defaults. */
  @Override
  public ObjectNode torchaoConfig(QuantConfig c) {
    ObjectNode data = TorchaoConfig.fields();
    data.put("group_size", c.groupSize());
    data.put("set_inductor_config", true);
    data.set("int4_packing_format", TorchaoConfig.enumValue("Int4PackingFormat", "TILE_PACKED_TO_4D"));
    data.set("int4_choose_qparams_algorithm", TorchaoConfig.enumValue("Int4ChooseQParamsAlgorithm", "TINYGEMM"));
    data.put("int4_tile_packed_ntile", 8);
    return TorchaoConfig.object("Int4WeightOnlyConfig", 2, data);
  }
}
