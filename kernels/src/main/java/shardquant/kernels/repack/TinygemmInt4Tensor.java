package shardquant.kernels.repack;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.AffineQuantRef;
import shardquant.kernels.quant.AffineSpec;
import shardquant.kernels.quant.BlockSize;
import shardquant.kernels.quant.MappingType;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QParams;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.ZeroPointDomain;
import shardquant.kernels.tensor.Tensor;

/**
 * A tinygemm int4 weight (or row shard of one) in one {@link Int4Layout}, on the host: what the repack
 * command reads and writes. {@link #repack} converts between layouts without re-quantizing: it unpacks
 * codes, scales and zeros and packs them again, so any round trip gives the original bytes back.
 *
 * <p>Row shards convert like quantization shards: converting rows [a, b) alone gives exactly those rows
 * of converting the whole tensor, with a and b multiples of {@link #rowAlignment} of both layouts (64
 * where the cpu layout is involved, 8 for tile-packed); only the tensor's last shard may end elsewhere.
 */
public final class TinygemmInt4Tensor {
  private final Int4Layout layout;
  private final int groupSize;
  private final int rows;
  private final int cols;
  private final Map<String, Tensor> parts;

  /**
   * {@code shape} is the original, unpadded [N, K] of the weight or row shard; {@code parts} are the
   * layout's stored tensors by name.
   */
  public TinygemmInt4Tensor(Int4Layout layout, int groupSize, long[] shape, Map<String, Tensor> parts) {
    if (shape.length != 2 || shape[0] <= 0 || shape[1] <= 0) {
      throw new IllegalArgumentException("a tinygemm int4 tensor is 2-D with a positive shape, got "
          + Arrays.toString(shape));
    }
    if (!layout.dataNames().equals(List.copyOf(parts.keySet()))) {
      throw new IllegalArgumentException("the " + layout.cliName() + " layout stores " + layout.dataNames()
          + ", got parts " + parts.keySet());
    }
    new QuantConfig(Recipe.INT4_TILE_PACKED, groupSize, 4); // checks the group size against the int4 recipes' table
    this.layout = layout;
    this.groupSize = groupSize;
    this.rows = Math.toIntExact(shape[0]);
    this.cols = Math.toIntExact(shape[1]);
    this.parts = Collections.unmodifiableMap(new LinkedHashMap<>(parts));
  }

  /** An {@code int4-tile-packed} or {@code int4-cpu} quantized tensor, as it is. */
  public static TinygemmInt4Tensor of(QuantizedTensor q) {
    Int4Layout layout = Int4Layout.of(q.config().recipe());
    if (layout == null) {
      throw new IllegalArgumentException("repack converts int4-tile-packed and int4-cpu tensors, got " + q
          + "; its codes are not tinygemm's");
    }
    return new TinygemmInt4Tensor(layout, q.config().groupSize(), q.shape(), q.parts());
  }

  /** The shard alignment for converting between {@code a} and {@code b} (both divide 64, so the larger). */
  public static int rowAlignment(Int4Layout a, Int4Layout b) {
    return Math.max(a.rowAlignment(), b.rowAlignment());
  }

  /** Why this tensor cannot be stored in {@code target} (a sentence), or null if it can. */
  public String refusal(Int4Layout target) {
    return target == layout ? null : target.refusal(rows, cols, groupSize);
  }

  /** The same codes, scales and zeros in {@code target}'s layout; this tensor itself if it is already there. */
  public TinygemmInt4Tensor repack(Int4Layout target) {
    if (target == layout) {
      return this;
    }
    String refusal = refusal(target);
    if (refusal != null) {
      throw new IllegalArgumentException(this + ": " + refusal);
    }
    return new TinygemmInt4Tensor(target, groupSize, shape(), target.pack(layout.unpack(parts, rows, cols, groupSize,
        toString())));
  }

  /** The quantized tensor of the tile-packed or cpu recipe; the plain form belongs to no recipe. */
  public QuantizedTensor toQuantized() {
    Recipe recipe = layout.recipe();
    if (recipe == null) {
      throw new IllegalStateException(this + ": the " + layout.cliName() + " form is no recipe's output");
    }
    return new QuantizedTensor(new QuantConfig(recipe, groupSize, 4), shape(), DType.BF16, parts);
  }

  /** The parts a tensor of this shape has in {@code target}, with the dimension row shards concatenate along. */
  public List<PartSpec> parts(Int4Layout target) {
    return target.parts(rows, cols, groupSize);
  }

  /** The per-tensor metadata value (torchao's {@code {"_type", "_data", "_tensor_data_names"}}) of this form. */
  public String torchaoMetadata() {
    return layout.torchaoMetadata(shape(), groupSize);
  }

  /**
   * The values tinygemm's dequantization gives, {@code ((q - 8) * scale) + zero} in bf16 steps
   * ({@code _dequantize_affine_tinygemm}); the plain form through torchao's same function on its int8 codes
   * (range -8..7, so its midpoint is 0), the others through their recipe.
   */
  public Tensor dequantize(DType out) {
    if (layout.recipe() != null) {
      return toQuantized().dequantize(out);
    }
    AffineSpec spec = new AffineSpec(MappingType.ASYMMETRIC, BlockSize.group(groupSize), DType.I8,
        -Int4Layout.PLAIN_OFFSET, 15 - Int4Layout.PLAIN_OFFSET, AffineSpec.defaultEps(DType.BF16), DType.BF16,
        DType.BF16, ZeroPointDomain.FLOAT);
    return AffineQuantRef.dequantize(part("qdata"), spec, new QParams(part("scale"), part("zero_point")), out);
  }

  public Int4Layout layout() {
    return layout;
  }

  public int groupSize() {
    return groupSize;
  }

  /** The original, unpadded [N, K]. */
  public long[] shape() {
    return new long[] {rows, cols};
  }

  int rows() {
    return rows;
  }

  int cols() {
    return cols;
  }

  public Map<String, Tensor> parts() {
    return parts;
  }

  public Tensor part(String name) {
    Tensor t = parts.get(name);
    if (t == null) {
      throw new IllegalArgumentException(this + " has no part '" + name + "'; it has " + parts.keySet());
    }
    return t;
  }

  @Override
  public String toString() {
    return "int4 " + layout.cliName() + " group " + groupSize + " [" + rows + ", " + cols + "]";
  }
}
