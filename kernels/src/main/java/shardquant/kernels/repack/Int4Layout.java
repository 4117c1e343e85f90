package shardquant.kernels.repack;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.layout.CpuInt4Layout;
import shardquant.kernels.layout.TensorCoreTiledInt4Layout;
import shardquant.kernels.layout.TinygemmScaleZero;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.TorchaoMetadata;
import shardquant.kernels.tensor.Tensor;

/**
 * The three stored forms of a tinygemm int4 weight that {@code shardquant repack --layout} converts between,
 * each with its parts, its torchao metadata and its unpacking to, and packing from, {@link UnpackedInt4}.
 * All three hold the same codes, scales and zeros; only the arrangement differs.
 */
public enum Int4Layout {
  /**
   * torchao's {@code Int4TilePackedTo4dTensor} (recipe {@code int4-tile-packed}): N padded to 8 and K to
   * 1024, as torchao pads. Written with exactly torchao's padding; read with any zero padding the tiled
   * kernel takes (K a multiple of 128), so the golden vectors, packed without padding, convert too.
   */
  TILE_PACKED("tile-packed", 8, Recipe.INT4_TILE_PACKED) {
    private static final int INNER_K_TILES = 8;

    @Override
    UnpackedInt4 unpack(TinygemmInt4Tensor t) {
      int n = t.rows();
      int k = t.cols();
      int g = t.groupSize();
      Tensor sz = t.part("scale_and_zero");
      Tensor qdata = t.part("qdata");
      long[] szShape = sz.shape();
      if (sz.dtype() != DType.BF16 || szShape.length != 3 || szShape[1] < n || szShape[0] * g < k) {
        throw new IllegalArgumentException(t + ": scale_and_zero must be bfloat16 [K'/" + g + "][N'][2] with N' >= " + n
            + " and K' >= " + k + ", got " + sz);
      }
      int paddedN = Math.toIntExact(szShape[1]);
      int paddedK = Math.toIntExact(szShape[0] * g);
      long[] packed = TensorCoreTiledInt4Layout.packedShape(paddedN, paddedK, INNER_K_TILES);
      if (qdata.dtype() != DType.I32 || !Arrays.equals(qdata.shape(), packed)) {
        throw new IllegalArgumentException(t + ": qdata must be int32 " + Arrays.toString(packed) + " to go with "
            + sz + ", got " + qdata);
      }
      int[] codes = TensorCoreTiledInt4Layout.unpack(qdata.toInts(), paddedN, paddedK, INNER_K_TILES);
      return new UnpackedInt4(paddedN, paddedK, g, codes, TinygemmScaleZero.scale(sz), TinygemmScaleZero.zero(sz))
          .cropped(n, k, t.toString());
    }

    @Override
    Map<String, Tensor> pack(UnpackedInt4 u) {
      // The recipe's scale_and_zero [K'/g][N'][2] carries torchao's padded N' and K'.
      long[] sz = parts(u.n(), u.k(), u.groupSize()).get(1).shape();
      int paddedN = Math.toIntExact(sz[1]);
      int paddedK = Math.toIntExact(sz[0] * u.groupSize());
      UnpackedInt4 p = u.padded(paddedN, paddedK);
      Map<String, Tensor> parts = new LinkedHashMap<>();
      parts.put("qdata", Tensor.fromInts(DType.I32, TensorCoreTiledInt4Layout.packedShape(paddedN, paddedK,
          INNER_K_TILES), TensorCoreTiledInt4Layout.pack(p.codes(), paddedN, paddedK, INNER_K_TILES)));
      parts.put("scale_and_zero", TinygemmScaleZero.pack(p.scale(), p.zero()));
      return parts;
    }
  },

  /**
   * PyTorch's CPU int4 layout, torchao's {@code Int4OpaqueTensor} (recipe {@code int4-cpu}): no padding,
   * N % 16 == 0, bytes in AVX-512 64-row blocks (see {@link CpuInt4Layout}).
   */
  CPU("cpu", 64, Recipe.INT4_CPU) {
    @Override
    public String refusal(long rows, long cols, int groupSize) {
      if (rows % 16 != 0) {
        return "the cpu layout needs N % 16 == 0 (PyTorch's _convert_weight_to_int4pack_for_cpu), got N = " + rows
            + "; keep this tensor tile-packed or plain";
      }
      return super.refusal(rows, cols, groupSize);
    }

    @Override
    UnpackedInt4 unpack(TinygemmInt4Tensor t) {
      checkParts(t);
      byte[] packed = new byte[t.rows() * t.cols() / 2];
      t.part("qdata").bytes().get(packed);
      Tensor sz = t.part("scale_and_zero");
      return new UnpackedInt4(t.rows(), t.cols(), t.groupSize(), CpuInt4Layout.unpack(packed, t.rows(), t.cols()),
          TinygemmScaleZero.scale(sz), TinygemmScaleZero.zero(sz));
    }

    @Override
    Map<String, Tensor> pack(UnpackedInt4 u) {
      Map<String, Tensor> parts = new LinkedHashMap<>();
      parts.put("qdata", Tensor.of(DType.U8, new long[] {u.n(), u.k() / 2},
          ByteBuffer.wrap(CpuInt4Layout.pack(u.codes(), u.n(), u.k()))));
      parts.put("scale_and_zero", TinygemmScaleZero.pack(u.scale(), u.zero()));
      return parts;
    }
  },

  /**
   * Unpacked codes, one per byte, with scale and zero as they are: {@code qdata} int8 [N][K] holding the
   * tinygemm code minus 8 (-8..7, the range of torch.int4), {@code scale} and {@code zero_point} bfloat16
   * [N][K/g] (the FLOAT-domain zero, unchanged). It dequantizes as tinygemm does,
   * {@code qdata * scale + zero_point} rounded to bf16 after the multiply and after the add: torchao's
   * {@code dequantize_affine_tinygemm(qdata, [1, g], scale, zero_point, torch.int8, -8, 7,
   * output_dtype=torch.bfloat16)} gives exactly the values of the tile-packed and cpu forms.
   *
   * <p>This is not torchao's {@code IntxUnpackedToInt8Tensor}, although its parts look the same:
   * IntxUnpackedToInt8Tensor dequantizes with {@code dequantize_affine}, {@code (qdata - zero_point) * scale},
   * which for tinygemm's float zero gives other values (and no integer zero point equals it), so that type
   * name would make a torchao loader compute silently wrong weights. The metadata says
   * {@value #PLAIN_TYPE} instead, which torchao's {@code unflatten_tensor_state_dict} refuses by name
   * ("Unsupported tensor type") rather than misreads, and its {@code _data} records the zero point domain
   * and code range a reader needs.
   */
  PLAIN("plain", 1, null) {
    @Override
    public List<PartSpec> parts(long rows, long cols, int groupSize) {
      return List.of(
          new PartSpec("qdata", DType.I8, new long[] {rows, cols}, 0),
          new PartSpec("scale", DType.BF16, new long[] {rows, cols / groupSize}, 0),
          new PartSpec("zero_point", DType.BF16, new long[] {rows, cols / groupSize}, 0));
    }

    @Override
    public String torchaoMetadata(long[] shape, int groupSize) {
      ObjectNode data = TorchaoMetadata.object();
      data.set("target_dtype", TorchaoMetadata.dtype("int4"));
      data.set("block_size", TorchaoMetadata.ints(1, groupSize));
      data.set("dtype", TorchaoMetadata.dtype(DType.BF16.torchName()));
      data.put("quant_min", -PLAIN_OFFSET);
      data.put("quant_max", 15 - PLAIN_OFFSET);
      ObjectNode domain = data.putObject("zero_point_domain");
      domain.put("_type", "ZeroPointDomain");
      domain.put("_data", "FLOAT");
      return TorchaoMetadata.tensor(PLAIN_TYPE, data, dataNames());
    }

    @Override
    UnpackedInt4 unpack(TinygemmInt4Tensor t) {
      checkParts(t);
      int[] codes = t.part("qdata").toInts();
      for (int i = 0; i < codes.length; i++) {
        if (codes[i] < -PLAIN_OFFSET || codes[i] >= PLAIN_OFFSET) {
          throw new IllegalArgumentException(t + ": qdata " + codes[i] + " at [" + i / t.cols() + "][" + i % t.cols()
              + "] is outside the int4 range -8..7");
        }
        codes[i] += PLAIN_OFFSET;
      }
      return new UnpackedInt4(t.rows(), t.cols(), t.groupSize(), codes, t.part("scale"), t.part("zero_point"));
    }

    @Override
    Map<String, Tensor> pack(UnpackedInt4 u) {
      int[] q = new int[u.codes().length];
      for (int i = 0; i < q.length; i++) {
        q[i] = u.codes()[i] - PLAIN_OFFSET;
      }
      Map<String, Tensor> parts = new LinkedHashMap<>();
      parts.put("qdata", Tensor.fromInts(DType.I8, new long[] {u.n(), u.k()}, q));
      parts.put("scale", u.scale());
      parts.put("zero_point", u.zero());
      return parts;
    }
  };

  /** The plain form's metadata type: shardquant's, so that no torchao loader takes it for one of its own. */
  public static final String PLAIN_TYPE = "shardquant.Int4TinygemmUnpackedTensor";
  /** tinygemm's midpoint: plain code = tinygemm code - 8, so that tinygemm's (q - 8) is the stored value. */
  static final int PLAIN_OFFSET = 8;

  private final String cliName;
  private final int rowAlignment;
  private final Recipe recipe;

  Int4Layout(String cliName, int rowAlignment, Recipe recipe) {
    this.cliName = cliName;
    this.rowAlignment = rowAlignment;
    this.recipe = recipe;
  }

  /** The name on the command line ({@code --layout tile-packed}). */
  public String cliName() {
    return cliName;
  }

  /** Row shards of this layout start at multiples of this many rows (the cpu layout's 64-row blocks). */
  public int rowAlignment() {
    return rowAlignment;
  }

  /** The recipe that writes this layout, or null for the plain form, which no recipe writes. */
  public Recipe recipe() {
    return recipe;
  }

  /** The stored parts' names, in the order of the metadata's {@code _tensor_data_names}. */
  public List<String> dataNames() {
    return recipe != null ? recipe.dataNames() : List.of("qdata", "scale", "zero_point");
  }

  /** Why a [rows, cols] tinygemm int4 tensor of group size {@code groupSize} cannot be stored in this layout, or null. */
  public String refusal(long rows, long cols, int groupSize) {
    if (this != TILE_PACKED && cols % groupSize != 0) {
      return "the " + cliName + " layout holds whole groups and needs K % " + groupSize + " == 0, got K = " + cols
          + " (its last group is part weight, part tile-packed padding); keep this tensor tile-packed";
    }
    return null;
  }

  /** The stored parts of a [rows, cols] tensor (or row shard), with the dimension row shards concatenate along. */
  public List<PartSpec> parts(long rows, long cols, int groupSize) {
    return recipe.kernel().parts(rows, cols, DType.BF16, config(groupSize));
  }

  /** The per-tensor metadata value of the output checkpoint. */
  public String torchaoMetadata(long[] shape, int groupSize) {
    return TorchaoMetadata.quantized(config(groupSize), shape, DType.BF16);
  }

  abstract UnpackedInt4 unpack(TinygemmInt4Tensor t);

  abstract Map<String, Tensor> pack(UnpackedInt4 u);

  QuantConfig config(int groupSize) {
    return new QuantConfig(recipe, groupSize, 4);
  }

  /** Checks a fixed-shape layout's parts against {@link #parts}, naming the tensor and the part. */
  void checkParts(TinygemmInt4Tensor t) {
    for (PartSpec spec : parts(t.rows(), t.cols(), t.groupSize())) {
      Tensor actual = t.part(spec.name());
      if (actual.dtype() != spec.dtype() || !Arrays.equals(actual.shape(), spec.shape())) {
        throw new IllegalArgumentException(t + ": part " + spec.name() + " must be " + spec + ", got " + actual);
      }
    }
  }

  public static Int4Layout fromCliName(String name) {
    for (Int4Layout l : values()) {
      if (l.cliName.equals(name)) {
        return l;
      }
    }
    throw new IllegalArgumentException("unknown layout '" + name + "'; choose one of "
        + Arrays.stream(values()).map(Int4Layout::cliName).toList());
  }
}
