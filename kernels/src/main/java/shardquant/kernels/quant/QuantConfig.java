package shardquant.kernels.quant;

import java.io.Serializable;

/** A recipe with its parameters, as a user asks for it ({@code --recipe}, {@code --group-size}, {@code --bits}). */
public record QuantConfig(Recipe recipe, int groupSize, int bits) implements Serializable {
  public QuantConfig {
    if (recipe == null) {
      throw new IllegalArgumentException("recipe is required");
    }
    recipe.checkParams(groupSize, bits);
  }

  /** The recipe with its default group size and bit width. */
  public static QuantConfig of(Recipe recipe) {
    return new QuantConfig(recipe, recipe.defaultGroupSize(), recipe.defaultBits());
  }

  /** torchao's config for this recipe ({@link RecipeKernel#torchaoConfig}), or null where no torchao config loads it. */
  public com.fasterxml.jackson.databind.node.ObjectNode torchaoConfig() {
    return recipe.kernel().torchaoConfig(this);
  }

  @Override
  public String toString() {
    return recipe.cliName() + (recipe.groupwise() ? " group " + groupSize : "") + (recipe.bitsChoosable() ? " bits " + bits : "");
  }
}
