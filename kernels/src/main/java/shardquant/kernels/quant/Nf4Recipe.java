package shardquant.kernels.quant;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import java.util.Optional;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@code nf4}: torchao's {@code to_nf4(w, 64, 256)} through {@link Nf4Ref}, which documents the
 * layout. Parts are flat, in NF4Tensor's {@code __tensor_flatten__} order; a row shard holds whole
 * groups of 64·256 elements, and the table and the scaler mean are the same in every shard. The
 * scaler mean comes from its {@link #firstPass}: {@link Nf4Ref#blockAbsmax} of every shard,
 * {@link Nf4Ref#scalerMean} of them all on the driver.
 */
final class Nf4Recipe implements RecipeKernel {
  static final Nf4Recipe INSTANCE = new Nf4Recipe();

  private static final FirstPass SCALER_MEAN = new FirstPass() {
    @Override
    public float[] partial(Tensor rows) {
      return Nf4Ref.blockAbsmax(rows);
    }

    @Override
    public GlobalStats combine(DType dtype, List<float[]> partialsInRowOrder) {
      return new GlobalStats(Nf4Ref.scalerMean(dtype, partialsInRowOrder));
    }
  };

  private Nf4Recipe() {}

  @Override
  public Optional<FirstPass> firstPass() {
    return Optional.of(SCALER_MEAN);
  }

  @Override
  public long rowAlignment(long cols, QuantConfig c) {
    long g = Nf4Ref.SHARD_ALIGNMENT;
    return g / gcd(g, cols);
  }

  @Override
  public String refusal(long rows, long cols, DType dtype, QuantConfig c) {
    if (!dtype.quantizable()) {
      return "nf4 quantizes " + DType.quantizableNames() + " weights, got " + dtype.safetensorsName();
    }
    long numel = rows * cols;
    if (numel % Nf4Ref.SHARD_ALIGNMENT != 0) {
      return "nf4 needs the element count to be a multiple of 64 x 256 = " + Nf4Ref.SHARD_ALIGNMENT + " (torchao's"
          + " block and scaler block), got " + rows + " x " + cols + " = " + numel;
    }
    return null;
  }

  @Override
  public List<PartSpec> parts(long rows, long cols, DType dtype, QuantConfig c) {
    long numel = rows * cols;
    return List.of(
        new PartSpec("quantized_data", DType.U8, new long[] {numel / 2}, 0),
        new PartSpec("scaler_mean", dtype, new long[0], PartSpec.REPLICATED),
        new PartSpec("quantization_factor", dtype, new long[] {numel / Nf4Ref.SHARD_ALIGNMENT}, 0),
        new PartSpec("quantized_scalers", DType.I8, new long[] {numel / Nf4Ref.BLOCK_SIZE}, 0),
        new PartSpec("nf4", dtype, new long[] {16}, PartSpec.REPLICATED));
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    if (Float.isNaN(global.scalerMean())) {
      throw new IllegalArgumentException("nf4 needs the tensor's scaler mean from a first pass (Nf4Ref.scalerMean)");
    }
    QuantizedTensor q = Nf4Ref.quantize(rows, global.scalerMean());
    stats.addRows(rows, Nf4Ref.dequantize(q), new long[Math.toIntExact(rows.rows())], rows.rows(), rows.cols());
    return q;
  }

  @Override
  public Tensor dequantize(QuantizedTensor q, DType out) {
    Tensor dq = Nf4Ref.dequantize(q);
    return out == dq.dtype() ? dq : Tensor.fromFloats(out, dq.shape(), dq.toFloats());
  }

  @Override
  public ObjectNode torchaoData(long[] shape, DType dtype, QuantConfig c) {
    ObjectNode data = TorchaoMetadata.JSON.objectNode();
    data.put("block_size", Nf4Ref.BLOCK_SIZE);
    data.put("n_blocks", shape[0] * shape[1] / Nf4Ref.BLOCK_SIZE);
    data.put("scaler_block_size", Nf4Ref.SCALER_BLOCK_SIZE);
    data.set("shape", TorchaoMetadata.longs(shape));
    data.set("dtype", TorchaoMetadata.dtype(dtype.torchName()));
    return data;
  }

  private static long gcd(long a, long b) {
    return b == 0 ? a : gcd(b, a % b);
  }

  /** None: {@code NF4Tensor} is not on torchao's safetensors allow-list and has no {@code quantize_} config. */
  @Override
  public ObjectNode torchaoConfig(QuantConfig c) {
    return null;
  }
}
