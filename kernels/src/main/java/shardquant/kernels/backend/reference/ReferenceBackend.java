package shardquant.kernels.backend.reference;

import shardquant.kernels.backend.Backend;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** The scalar reference: each recipe's own class (slow, obviously correct, held against the golden files). */
public final class ReferenceBackend implements Backend {
  public static final ReferenceBackend INSTANCE = new ReferenceBackend();

  private ReferenceBackend() {}

  @Override
  public String name() {
    return "reference";
  }

  @Override
  public String nameFor(Recipe recipe) {
    return name();
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    return c.recipe().kernel().quantize(rows, c, global, stats);
  }

  @Override
  public float[] firstPass(QuantConfig c, Tensor rows) {
    return c.recipe().firstPass()
        .orElseThrow(() -> new IllegalArgumentException(c.recipe().cliName() + " has no first pass"))
        .partial(rows);
  }
}
