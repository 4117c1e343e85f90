package shardquant.kernels.backend.cuda;

import java.util.LinkedHashMap;
import java.util.Map;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** One recipe family's host code on the GPU: uploads a shard, launches its kernels, downloads its parts. */
interface CudaRecipe {
  /**
   * The shard's parts, byte for byte the reference's, with its verification sums added to {@code stats};
   * or null, leaving {@code stats} alone, when the shard must run on the CPU backend instead (it holds
   * NaN or infinity, which the CPU backend refuses with the reference's message).
   */
  QuantizedTensor quantize(Gpu gpu, Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats);

  /**
   * The shard's first-pass partial ({@link shardquant.kernels.backend.Backend#firstPass}), or null where
   * the CPU backend must answer: a shard the kernel does not take, or a recipe with no first-pass kernel.
   */
  default float[] firstPass(Gpu gpu, Tensor rows, QuantConfig c) {
    return null;
  }

  /** The parts the recipe declares for {@code rows} ({@link shardquant.kernels.quant.RecipeKernel#parts}), by name. */
  static Map<String, PartSpec> declared(QuantConfig c, Tensor rows) {
    Map<String, PartSpec> parts = new LinkedHashMap<>();
    for (PartSpec p : c.recipe().kernel().parts(rows.rows(), rows.cols(), rows.dtype(), c)) {
      parts.put(p.name(), p);
    }
    return parts;
  }

  /** A row output ({@link CudaShard#rowOutput}) on {@code shard} for the declared part {@code name}. */
  static CudaShard.Output rowOutput(CudaShard shard, Map<String, PartSpec> declared, String name) {
    return shard.rowOutput(declared.get(name).byteSize());
  }

  /**
   * The shard's parts in their declared order: those the kernels wrote ({@code onDevice}) as downloaded,
   * the rest zeroed on the host (a symmetric zero point, or parts the caller fills).
   */
  static QuantizedTensor download(CudaShard shard, QuantConfig c, Tensor rows, Map<String, PartSpec> declared,
      Map<String, CudaShard.Output> onDevice) {
    Map<String, Tensor> parts = new LinkedHashMap<>();
    for (PartSpec p : declared.values()) {
      CudaShard.Output m = onDevice.get(p.name());
      parts.put(p.name(), m != null ? m.tensor(p.dtype(), p.shape()) : p.allocate());
    }
    return QuantizedTensor.of(c, rows.shape(), rows.dtype(), parts);
  }
}
