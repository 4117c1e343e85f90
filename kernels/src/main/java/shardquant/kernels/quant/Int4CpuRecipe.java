package shardquant.kernels.quant;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.layout.CpuInt4Layout;
import shardquant.kernels.layout.TinygemmScaleZero;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@code int4-cpu}: the tinygemm int4 quantization of {@link Int4TilePackedRecipe}, packed for
 * PyTorch's CPU kernel by {@code aten._convert_weight_to_int4pack_for_cpu} (uint8 [N][K/2]) and
 * stored with the same {@code scale_and_zero}. No padding: PyTorch's CPU packing needs N % 16 == 0
 * and this recipe refuses other shapes rather than pad them.
 *
 * <p>The CPU layout's bytes are not row-major: PyTorch packs blocks of 64 rows (on AVX-512, which
 * made the golden vectors; see {@link CpuInt4Layout}), so shards align to 64 rows.
 */
final class Int4CpuRecipe implements RecipeKernel {
  static final Int4CpuRecipe INSTANCE = new Int4CpuRecipe();
  static final int ROW_BLOCK = 64;
  static final int N_MULTIPLE = 16;

  private Int4CpuRecipe() {}

  @Override
  public long rowAlignment(long cols, QuantConfig c) {
    return ROW_BLOCK;
  }

  @Override
  public String refusal(long rows, long cols, DType dtype, QuantConfig c) {
    if (rows % N_MULTIPLE != 0) {
      return "int4-cpu needs the row count N to be a multiple of " + N_MULTIPLE
          + " (PyTorch's _convert_weight_to_int4pack_for_cpu), got N = " + rows + "; use int4-tile-packed, which pads";
    }
    if (cols % c.groupSize() != 0) {
      return "int4-cpu needs K to be a multiple of the group size " + c.groupSize() + ", got K = " + cols;
    }
    return TinygemmInt4.refusal(dtype, c);
  }

  @Override
  public List<PartSpec> parts(long rows, long cols, DType dtype, QuantConfig c) {
    return List.of(
        new PartSpec("qdata", DType.U8, new long[] {rows, cols / 2}, 0),
        new PartSpec("scale_and_zero", DType.BF16, new long[] {cols / c.groupSize(), rows, 2}, 1));
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    int n = Math.toIntExact(rows.rows());
    int k = Math.toIntExact(rows.cols());
    TinygemmInt4.Codes q = TinygemmInt4.quantize(rows, n, k, c, stats);
    Map<String, Tensor> parts = new LinkedHashMap<>();
    byte[] packed = CpuInt4Layout.pack(q.codes(), n, k);
    PackingCheck.roundTrip("cpu qdata", q.codes(), CpuInt4Layout.unpack(packed, n, k));
    parts.put("qdata", Tensor.of(DType.U8, new long[] {n, k / 2}, java.nio.ByteBuffer.wrap(packed)));
    parts.put("scale_and_zero", TinygemmScaleZero.pack(q.scale(), q.zero()));
    return new QuantizedTensor(c, rows.shape(), rows.dtype(), parts);
  }

  @Override
  public Tensor dequantize(QuantizedTensor q, DType out) {
    Tensor qdata = q.part("qdata");
    int n = Math.toIntExact(qdata.rows());
    int k = Math.toIntExact(qdata.cols() * 2);
    byte[] packed = new byte[n * k / 2];
    qdata.bytes().get(packed);
    return TinygemmInt4.dequantize(CpuInt4Layout.unpack(packed, n, k), n, k, q.part("scale_and_zero"), q.shape(),
        q.config(), out);
  }

  @Override
  public ObjectNode torchaoData(long[] shape, DType dtype, QuantConfig c) {
    return TorchaoMetadata.blockAndShape(new int[] {1, c.groupSize()}, shape);
  }

  /** None: {@code Int4OpaqueTensor} is not on torchao's safetensors allow-list. */
  @Override
  public ObjectNode torchaoConfig(QuantConfig c) {
    return null;
  }
}
