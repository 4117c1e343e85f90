package shardquant.kernels.quant;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import java.util.Optional;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * What one recipe does, on the reference (scalar) backend. Quantizing rows [a, b) of a tensor gives
 * exactly that row slice of quantizing the whole tensor (DESIGN.md, "FSDP-style composability"), so
 * the job may cut a tensor anywhere {@link #rowAlignment} allows.
 */
public interface RecipeKernel {
  /** Shards of a tensor with {@code cols} columns start at multiples of this many rows. */
  long rowAlignment(long cols, QuantConfig c);

  /** Why a [rows, cols] tensor of {@code dtype} cannot take this recipe (a sentence), or null if it can. */
  String refusal(long rows, long cols, DType dtype, QuantConfig c);

  /** The stored parts of a [rows, cols] tensor (or row shard), in torchao's order. */
  List<PartSpec> parts(long rows, long cols, DType dtype, QuantConfig c);

  /**
   * The recipe's tensor-global first pass, where it has one: then every shard's {@link #quantize} needs
   * the {@link GlobalStats} it combines. Most recipes quantize each shard alone.
   */
  default Optional<FirstPass> firstPass() {
    return Optional.empty();
  }

  /**
   * Quantizes a 2-D row shard. {@code global} carries the tensor-wide statistics of the recipe's
   * {@link #firstPass}; recipes without one ignore it. Adds the shard's verification sums to {@code stats}.
   */
  QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats);

  /** torchao's dequantization of the stored parts, rounded into {@code out}. */
  Tensor dequantize(QuantizedTensor q, DType out);

  /** The {@code _data} torchao stores for a tensor of this shape and dtype (its constructor's non-tensor arguments). */
  ObjectNode torchaoData(long[] shape, DType dtype, QuantConfig c);

  /**
   * torchao's config for this recipe as {@code config_to_dict} encodes it ({@link TorchaoConfig}): what
   * transformers' {@code TorchAoConfig} and vLLM load a checkpoint with. Null where no torchao config
   * loads the stored format through torchao's safetensors support (its tensor type is not on torchao's
   * allow-list), so no loader is told to try.
   */
  ObjectNode torchaoConfig(QuantConfig c);
}
