package shardquant.kernels.quant;

import java.util.Arrays;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * The parts of torchao's {@code NF4Tensor} (torchao/dtypes/nf4tensor.py) for a whole tensor or for a
 * row shard of one, owned together so that none is left behind: quantizing never keeps a reference to
 * the input, and dequantizing is the explicit {@link Nf4Ref#dequantize} call.
 *
 * <p>Layout, as torchao stores it for an input of {@code numel} elements of a floating {@code dtype}:
 * <ul>
 *   <li>{@code quantized_data}: uint8 [numel / 2]; byte {@code j} holds element {@code 2j}'s 4-bit code in
 *       its high nibble and element {@code 2j+1}'s in its low nibble ({@code q[::2] << 4 | q[1::2]});
 *       a code indexes {@link Nf4Ref#table}.
 *   <li>{@code quantized_scalers}: int8 [numel / 64], one per block of 64 elements: the block's absmax
 *       minus {@code scaler_mean}, times its scaler block's {@code quantization_factor}, rounded.
 *   <li>{@code quantization_factor}: dtype [numel / (64 * 256)], one per 256 consecutive blocks.
 *   <li>{@code scaler_mean}: the mean of all block absmax values of the whole tensor, in dtype; a row
 *       shard carries the whole tensor's mean, which is what makes its other parts exact slices.
 * </ul>
 */
public final class Nf4Tensor {
  private final DType dtype;
  private final long[] shape;
  private final Tensor quantizedData;
  private final Tensor quantizedScalers;
  private final Tensor quantizationFactor;
  private final float scalerMean;

  /** Checks that the parts have the dtypes and sizes an input of {@code shape} and {@code dtype} gives. */
  public Nf4Tensor(DType dtype, long[] shape, Tensor quantizedData, Tensor quantizedScalers,
      Tensor quantizationFactor, float scalerMean) {
    long numel = Nf4Ref.checkShape(dtype, shape);
    requirePart("quantized_data", quantizedData, DType.U8, numel / 2);
    requirePart("quantized_scalers", quantizedScalers, DType.I8, numel / Nf4Ref.BLOCK_SIZE);
    requirePart("quantization_factor", quantizationFactor, dtype, numel / Nf4Ref.SHARD_ALIGNMENT);
    Nf4Ref.checkScalerMean(dtype, scalerMean);
    this.dtype = dtype;
    this.shape = shape.clone();
    this.quantizedData = quantizedData;
    this.quantizedScalers = quantizedScalers;
    this.quantizationFactor = quantizationFactor;
    this.scalerMean = scalerMean;
  }

  /** The dtype of the original (and the dequantized) tensor. */
  public DType dtype() {
    return dtype;
  }

  /** The shape of the original tensor, or of the row shard. */
  public long[] shape() {
    return shape.clone();
  }

  public long numel() {
    return Tensor.numel(shape);
  }

  public Tensor quantizedData() {
    return quantizedData;
  }

  public Tensor quantizedScalers() {
    return quantizedScalers;
  }

  public Tensor quantizationFactor() {
    return quantizationFactor;
  }

  public float scalerMean() {
    return scalerMean;
  }

  /** {@code scaler_mean} as torchao holds it: a 0-dim tensor of the input dtype ({@code Tensor.mean()}). */
  public Tensor scalerMeanTensor() {
    return Tensor.fromFloats(dtype, new long[0], new float[] {scalerMean});
  }

  /** torchao's {@code nf4} lookup table in this tensor's dtype. */
  public Tensor nf4() {
    return Tensor.fromFloats(dtype, new long[] {16}, Nf4Ref.table(dtype));
  }

  /** Same dtype, shape, mean and part bytes. */
  public boolean contentEquals(Nf4Tensor other) {
    return dtype == other.dtype && Arrays.equals(shape, other.shape)
        && Float.floatToRawIntBits(scalerMean) == Float.floatToRawIntBits(other.scalerMean)
        && quantizedData.contentEquals(other.quantizedData)
        && quantizedScalers.contentEquals(other.quantizedScalers)
        && quantizationFactor.contentEquals(other.quantizationFactor);
  }

  @Override
  public String toString() {
    return "Nf4Tensor(" + dtype.torchName() + Arrays.toString(shape) + ", scaler_mean=" + scalerMean + ")";
  }

  private static void requirePart(String name, Tensor part, DType dtype, long numel) {
    if (part.dtype() != dtype || part.rank() != 1 || part.numel() != numel) {
      throw new IllegalArgumentException(name + " must be " + dtype.torchName() + "[" + numel + "], got " + part);
    }
  }
}
