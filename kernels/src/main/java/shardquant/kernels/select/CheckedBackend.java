package shardquant.kernels.select;

import java.util.EnumMap;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.backend.SelfCheck;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * A fast backend with the reference behind it, recipe by recipe: recipes that failed the
 * {@link SelfCheck} run on the reference from the start, and a recipe whose fast kernel throws on a
 * later shard where the reference does not (a shape the self-check did not try) runs that shard and
 * every later one on the reference, with one warning. Where the reference throws too, the input is at
 * fault (NaN, a shape the recipe refuses) and the error is the fast kernel's own refusal where it gave
 * one (an IllegalArgumentException with the reference's or the recipe's message), else the reference's.
 */
final class CheckedBackend implements Backend {
  private static final System.Logger LOG = System.getLogger(Backends.class.getName());
  private final Backend fast;
  private final Backend reference;
  private final Map<Recipe, String> off = new EnumMap<>(Recipe.class);
  /** Recipes not self-checked yet: each is checked on its first use ({@link #check}). */
  private final Set<Recipe> unchecked = EnumSet.noneOf(Recipe.class);
  private final Function<Recipe, String> selfCheck;

  /** {@code fast} with {@code failed} (recipe → why) running on {@code reference}, every other recipe checked. */
  CheckedBackend(Backend fast, Backend reference, Map<Recipe, String> failed) {
    this(fast, reference, failed, Set.of(), r -> null);
  }

  /**
   * {@code fast} with {@code failed} running on {@code reference}, and the recipes of {@code unchecked}
   * held back until {@code selfCheck} (recipe → why it failed, or null) has passed them on their first
   * use: a job pays only for the check of the recipes it runs (the check is mostly the JIT compiling
   * each recipe's kernels, about 0.3 s a recipe).
   */
  CheckedBackend(Backend fast, Backend reference, Map<Recipe, String> failed, Set<Recipe> unchecked,
      Function<Recipe, String> selfCheck) {
    this.fast = fast;
    this.reference = reference;
    this.selfCheck = selfCheck;
    off.putAll(failed);
    this.unchecked.addAll(unchecked);
    this.unchecked.removeAll(failed.keySet());
  }

  @Override
  public String name() {
    return fast.name();
  }

  @Override
  public String nameFor(Recipe recipe) {
    return isOff(recipe) ? reference.nameFor(recipe) : fast.nameFor(recipe);
  }

  /** Recipes the fast backend has a kernel for that run on the reference, with why. */
  synchronized Map<Recipe, String> off() {
    return Map.copyOf(off);
  }

  /**
   * Whether {@code recipe} runs on the reference; its self-check first where it has not run yet (under
   * this object's lock, so no shard of the recipe runs on the fast kernels before it has passed).
   */
  private synchronized boolean isOff(Recipe recipe) {
    if (unchecked.remove(recipe)) {
      String why = selfCheck.apply(recipe);
      if (why != null) {
        off.put(recipe, why);
        LOG.log(System.Logger.Level.WARNING, "shardquant: on " + SelfCheck.runtime() + " the " + fast.name()
            + " kernels failed their self-check against the reference (" + recipe.cliName() + ": " + why + "); "
            + recipe.cliName() + " runs on the scalar reference");
      }
    }
    return off.containsKey(recipe);
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    if (!isOff(c.recipe())) {
      try {
        QuantStats own = new QuantStats(); // merged only with a result, so a fallback never counts twice
        QuantizedTensor q = fast.quantize(rows, c, global, own);
        stats.merge(own);
        return q;
      } catch (Throwable fastFailure) {
        QuantizedTensor q;
        QuantStats own = new QuantStats(); // the reference adds some sums before some of its refusals
        try {
          q = reference.quantize(rows, c, global, own);
        } catch (RuntimeException | Error referenceFailure) {
          throw inputFault(fastFailure, referenceFailure);
        }
        stats.merge(own);
        turnOff(c.recipe(), "its kernel failed on a " + rows + " that the reference quantizes: "
            + SelfCheck.firstLine(fastFailure), fastFailure);
        return q;
      }
    }
    return reference.quantize(rows, c, global, stats);
  }

  @Override
  public float[] firstPass(QuantConfig c, Tensor rows) {
    if (!isOff(c.recipe())) {
      try {
        return fast.firstPass(c, rows);
      } catch (Throwable fastFailure) {
        float[] partial;
        try {
          partial = reference.firstPass(c, rows);
        } catch (RuntimeException | Error referenceFailure) {
          throw inputFault(fastFailure, referenceFailure);
        }
        turnOff(c.recipe(), "its first pass failed on a " + rows + " that the reference reads: "
            + SelfCheck.firstLine(fastFailure), fastFailure);
        return partial;
      }
    }
    return reference.firstPass(c, rows);
  }

  /** The error for an input both backends throw on: the fast kernel's refusal where it gave one, else the reference's. */
  private static RuntimeException inputFault(Throwable fastFailure, Throwable referenceFailure) {
    if (fastFailure instanceof IllegalArgumentException refusal) {
      return refusal;
    }
    if (referenceFailure instanceof Error e) {
      throw e;
    }
    return (RuntimeException) referenceFailure;
  }

  private void turnOff(Recipe recipe, String why, Throwable cause) {
    synchronized (this) {
      if (off.putIfAbsent(recipe, why) != null) {
        return;
      }
    }
    LOG.log(System.Logger.Level.DEBUG, "the " + fast.name() + " kernel for " + recipe.cliName() + " failed", cause);
    LOG.log(System.Logger.Level.WARNING, "shardquant: on " + SelfCheck.runtime() + " the " + fast.name() + " kernel for "
        + recipe.cliName() + " is off from now on in this JVM and " + recipe.cliName() + " runs on the reference: " + why);
  }

  @Override
  public String toString() {
    return fast.name() + " with the reference behind it";
  }
}
