package shardquant.kernels.backend.simd;

import java.util.EnumMap;
import java.util.Map;
import jdk.incubator.vector.FloatVector;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.backend.reference.ReferenceBackend;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * The CPU SIMD backend (Java Vector API). Loaded only through {@link shardquant.kernels.select.Backends},
 * and only where {@code jdk.incubator.vector} is present and vectors are wide enough, so nothing else
 * touches the incubator module. Recipes without a SIMD kernel here run on the reference.
 */
public final class SimdBackend implements Backend {
  private final Map<Recipe, SimdKernel> kernels = new EnumMap<>(Recipe.class);

  public SimdBackend() {
    // One line per recipe with a SIMD kernel (the kernels' own classes hold the byte layout comments).
    kernels.put(Recipe.NF4, new SimdNf4());
    for (Recipe r : Recipe.values()) { // every tinygemm int4 recipe: SimdInt4 packs each recipe's layout
      if (Int4Layout.of(r) != null) {
        kernels.put(r, new SimdInt4(Int4Layout.of(r)));
      }
    }
    kernels.put(Recipe.INT8_DYN_ACT_INT4_WEIGHT, new SimdIntx());
    kernels.put(Recipe.INTX_WEIGHT_ONLY, new SimdIntx());
    kernels.put(Recipe.INT8_WEIGHT_ONLY, new SimdInt8());
    kernels.put(Recipe.INT8_DYNAMIC, new SimdInt8());
  }

  /** Width of the preferred float vector here, in bits (the provider's "wide enough" check). */
  public static int preferredBitSize() {
    return FloatVector.SPECIES_PREFERRED.vectorBitSize();
  }

  @Override
  public String name() {
    return "cpu-simd";
  }

  @Override
  public String nameFor(Recipe recipe) {
    return kernels.containsKey(recipe) ? name() : ReferenceBackend.INSTANCE.name();
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    SimdKernel k = kernels.get(c.recipe());
    return k != null ? k.quantize(rows, c, global, stats) : ReferenceBackend.INSTANCE.quantize(rows, c, global, stats);
  }

  @Override
  public float[] firstPass(QuantConfig c, Tensor rows) {
    SimdKernel k = kernels.get(c.recipe());
    return k != null ? k.firstPass(c, rows) : ReferenceBackend.INSTANCE.firstPass(c, rows);
  }
}
