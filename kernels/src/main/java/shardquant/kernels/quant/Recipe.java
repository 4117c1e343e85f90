package shardquant.kernels.quant;

import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;
import shardquant.kernels.dtype.DType;

/**
 * The one table of recipes: each row names a recipe as users ask for it, the torchao tensor subclass
 * it corresponds to (DESIGN.md, "Recipes"), the group sizes and bit widths it takes, and the class that
 * implements it, which alone declares its stored parts and whether it has a first pass. Adding a recipe
 * touches this table and that class only.
 */
public enum Recipe {
  INT4_TILE_PACKED("int4-tile-packed", Int4Layout.TILE_PACKED.torchaoType(),
      new int[] {32, 64, 128, 256}, 128, 4, false, () -> TinygemmInt4Recipe.of(Int4Layout.TILE_PACKED)),
  INT4_CPU("int4-cpu", Int4Layout.CPU.torchaoType(),
      new int[] {32, 64, 128, 256}, 128, 4, false, () -> TinygemmInt4Recipe.of(Int4Layout.CPU)),
  INT8_DYN_ACT_INT4_WEIGHT("8da4w", "IntxUnpackedToInt8Tensor",
      new int[] {32, 64, 128, 256}, 32, 4, false, () -> IntxRecipe.ACT_INT8),
  INTX_WEIGHT_ONLY("intx-weight-only", "IntxUnpackedToInt8Tensor",
      new int[] {32, 64, 128, 256}, 32, 4, true, () -> IntxRecipe.WEIGHT_ONLY),
  INT8_WEIGHT_ONLY("int8-weight-only", "Int8Tensor",
      new int[0], 0, 8, false, () -> Int8Recipe.WEIGHT_ONLY),
  INT8_DYNAMIC("int8-dynamic", "Int8Tensor",
      new int[0], 0, 8, false, () -> Int8Recipe.DYNAMIC),
  NF4("nf4", "NF4Tensor",
      new int[] {64}, 64, 4, false, () -> Nf4Recipe.INSTANCE);

  private final String cliName;
  private final String torchaoType;
  /** {@link #dataNames}, read once from the kernel's {@link RecipeKernel#parts} (the kernels load lazily). */
  private volatile List<String> dataNames;
  private final int[] groupSizes;
  private final int defaultGroupSize;
  private final int defaultBits;
  private final boolean bitsChoosable;
  private final Supplier<RecipeKernel> kernel;

  Recipe(String cliName, String torchaoType, int[] groupSizes, int defaultGroupSize,
      int defaultBits, boolean bitsChoosable, Supplier<RecipeKernel> kernel) {
    this.cliName = cliName;
    this.torchaoType = torchaoType;
    this.groupSizes = groupSizes;
    this.defaultGroupSize = defaultGroupSize;
    this.defaultBits = defaultBits;
    this.bitsChoosable = bitsChoosable;
    this.kernel = kernel;
  }

  /** The name on the command line ({@code --recipe int4-tile-packed}). */
  public String cliName() {
    return cliName;
  }

  /** torchao's tensor subclass, the {@code _type} of the stored metadata. */
  public String torchaoType() {
    return torchaoType;
  }

  /**
   * torchao's {@code _tensor_data_names}, in its order: stored as {@code a.b._weight_<name>}. The names
   * of the parts the kernel declares ({@link RecipeKernel#parts}), which do not depend on the shape
   * (read at [64, 1024], a shape every recipe takes).
   */
  public List<String> dataNames() {
    List<String> names = dataNames;
    if (names == null) {
      names = kernel().parts(64, 1024, DType.BF16, QuantConfig.of(this)).stream().map(PartSpec::name).toList();
      dataNames = names;
    }
    return names;
  }

  public boolean groupwise() {
    return groupSizes.length > 0;
  }

  public int defaultGroupSize() {
    return defaultGroupSize;
  }

  public int defaultBits() {
    return defaultBits;
  }

  public boolean bitsChoosable() {
    return bitsChoosable;
  }

  public RecipeKernel kernel() {
    return kernel.get();
  }

  /** The recipe's tensor-global first pass, where it has one ({@link RecipeKernel#firstPass}). */
  public Optional<FirstPass> firstPass() {
    return kernel().firstPass();
  }

  void checkParams(int groupSize, int bits) {
    if (groupwise() ? Arrays.stream(groupSizes).noneMatch(g -> g == groupSize) : groupSize != 0) {
      throw new IllegalArgumentException("recipe " + cliName + " takes group size "
          + (groupwise() ? "one of " + Arrays.toString(groupSizes) : "none (it is per channel)") + ", got " + groupSize);
    }
    if (bitsChoosable ? bits < 1 || bits > 8 : bits != defaultBits) {
      throw new IllegalArgumentException("recipe " + cliName + " takes "
          + (bitsChoosable ? "1 to 8 bits" : "only " + defaultBits + " bits") + ", got " + bits);
    }
  }

  public static Recipe fromCliName(String name) {
    for (Recipe r : values()) {
      if (r.cliName.equals(name)) {
        return r;
      }
    }
    throw new IllegalArgumentException("unknown recipe '" + name + "'; choose one of "
        + Arrays.stream(values()).map(Recipe::cliName).toList());
  }
}
