package shardquant.kernels.quant;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.layout.TinygemmScaleZero;
import shardquant.kernels.layout.CpuInt4Layout;
import shardquant.kernels.layout.TensorCoreTiledInt4Layout;
import shardquant.kernels.tensor.Tensor;

/**
 * The stored forms of a tinygemm int4 weight, declared once: each layout's name, row unit, padding, stored
 * parts, torchao type and metadata, and its packing from and unpacking to {@link UnpackedInt4}. All of them
 * hold the same codes, scales and zeros; only the arrangement differs. The {@code int4-tile-packed} and
 * {@code int4-cpu} recipes ({@link TinygemmInt4Recipe}, one class given a layout), the SIMD and CUDA int4
 * kernels, the loader and {@code shardquant repack} all read a layout's facts from here.
 *
 * <p>A new int4 layout touches 7 files (and its tests): this enum (its constant: everything above);
 * {@code quant/Recipe} (a row giving it to {@link TinygemmInt4Recipe}; none for a repack-only form like
 * {@link #PLAIN}); {@code backend/simd/SimdInt4} (its packer); {@code backend/cuda/CudaInt4} (its kernel's
 * launch) and {@code src/main/cuda/int4_tinygemm.cu}; {@code backend/cuda/CudaInt4Repack} (its unpack/pack
 * kernel id) and {@code src/main/cuda/int4_unpack.cu}. Those three Java classes switch over this enum
 * exhaustively, so a constant without a kernel there does not compile. The loader, the planner, the
 * repack command and the SIMD and CUDA backends' recipe lists take every layout and int4 recipe from here
 * and from the {@link Recipe} table.
 */
public enum Int4Layout {
  /**
   * torchao's {@code Int4TilePackedTo4dTensor} (recipe {@code int4-tile-packed}): N padded to 8 and K to
   * 1024, as torchao pads, and qdata in {@link TensorCoreTiledInt4Layout} with inner_k_tiles 8. Written with
   * exactly torchao's padding; read with any zero padding the tiled kernel takes (K a multiple of 128), so
   * the golden vectors, packed without padding, convert too.
   */
  TILE_PACKED("tile-packed", "Int4TilePackedTo4dTensor", 8, "TILE_PACKED_TO_4D") {
    @Override
    public long storedRows(long rows) {
      return roundUp(rows, 8);
    }

    @Override
    public long storedCols(long cols) {
      return roundUp(cols, 1024);
    }

    @Override
    public List<PartSpec> parts(long rows, long cols, int groupSize) {
      long n = storedRows(rows);
      long k = storedCols(cols);
      return List.of(
          new PartSpec("qdata", DType.I32, TensorCoreTiledInt4Layout.packedShape(Math.toIntExact(n), Math.toIntExact(k),
              INNER_K_TILES), 0),
          new PartSpec("scale_and_zero", DType.BF16, new long[] {k / groupSize, n, 2}, 1));
    }

    @Override
    public Tensor packCodes(int[] codes, int n, int k) {
      return Tensor.fromInts(DType.I32, TensorCoreTiledInt4Layout.packedShape(n, k, INNER_K_TILES),
          TensorCoreTiledInt4Layout.pack(codes, n, k, INNER_K_TILES));
    }

    @Override
    public int[] unpackCodes(Tensor qdata, int n, int k) {
      return TensorCoreTiledInt4Layout.unpack(qdata.toInts(), n, k, INNER_K_TILES);
    }

    /** Reads any zero padding the tiled kernel takes: the padded N' x K' come from scale_and_zero. */
    @Override
    public UnpackedInt4 unpack(Map<String, Tensor> parts, int rows, int cols, int g, String what) {
      Tensor sz = part(parts, "scale_and_zero", what);
      Tensor qdata = part(parts, "qdata", what);
      long[] szShape = sz.shape();
      if (sz.dtype() != DType.BF16 || szShape.length != 3 || szShape[1] < rows || szShape[0] * g < cols) {
        throw new IllegalArgumentException(what + ": scale_and_zero must be bfloat16 [K'/" + g + "][N'][2] with N' >= "
            + rows + " and K' >= " + cols + ", got " + sz);
      }
      int paddedN = Math.toIntExact(szShape[1]);
      int paddedK = Math.toIntExact(szShape[0] * g);
      long[] packed = TensorCoreTiledInt4Layout.packedShape(paddedN, paddedK, INNER_K_TILES);
      if (qdata.dtype() != DType.I32 || !Arrays.equals(qdata.shape(), packed)) {
        throw new IllegalArgumentException(what + ": qdata must be int32 " + Arrays.toString(packed) + " to go with "
            + sz + ", got " + qdata);
      }
      return new UnpackedInt4(paddedN, paddedK, g, unpackCodes(qdata, paddedN, paddedK), TinygemmScaleZero.scale(sz),
          TinygemmScaleZero.zero(sz)).cropped(rows, cols, what);
    }
  },

  /**
   * PyTorch's CPU int4 layout, torchao's {@code Int4OpaqueTensor} (recipe {@code int4-cpu}): no padding,
   * N % 16 == 0, bytes in AVX-512 64-row blocks (see {@link CpuInt4Layout}), so row shards align to 64.
   * No torchao config: {@code Int4OpaqueTensor} is not on torchao's safetensors allow-list.
   */
  CPU("cpu", "Int4OpaqueTensor", 64, null) {
    @Override
    public String refusal(long rows, long cols, int groupSize) {
      if (rows % 16 != 0) {
        return "the cpu layout needs N % 16 == 0 (PyTorch's _convert_weight_to_int4pack_for_cpu), got N = " + rows
            + "; keep this tensor tile-packed or plain";
      }
      return super.refusal(rows, cols, groupSize);
    }

    @Override
    public List<PartSpec> parts(long rows, long cols, int groupSize) {
      return List.of(
          new PartSpec("qdata", DType.U8, new long[] {rows, cols / 2}, 0),
          new PartSpec("scale_and_zero", DType.BF16, new long[] {cols / groupSize, rows, 2}, 1));
    }

    @Override
    public Tensor packCodes(int[] codes, int n, int k) {
      return Tensor.of(DType.U8, new long[] {n, k / 2}, ByteBuffer.wrap(CpuInt4Layout.pack(codes, n, k)));
    }

    @Override
    public int[] unpackCodes(Tensor qdata, int n, int k) {
      byte[] packed = new byte[Math.toIntExact(qdata.byteSize())];
      qdata.bytes().get(packed);
      return CpuInt4Layout.unpack(packed, n, k);
    }
  },

  /**
   * Unpacked codes, one per byte, with scale and zero as they are: {@code qdata} int8 [N][K] holding the
   * tinygemm code minus 8 (-8..7, the range of torch.int4), {@code scale} and {@code zero_point} bfloat16
   * [N][K/g] (the FLOAT-domain zero, unchanged). It dequantizes as tinygemm does,
   * {@code qdata * scale + zero_point} rounded to bf16 after the multiply and after the add: torchao's
   * {@code dequantize_affine_tinygemm(qdata, [1, g], scale, zero_point, torch.int8, -8, 7,
   * output_dtype=torch.bfloat16)} gives exactly the values of the tile-packed and cpu forms. No recipe writes
   * it; {@code shardquant repack --layout plain} does.
   *
   * <p>This is not torchao's {@code IntxUnpackedToInt8Tensor}, although its parts look the same:
   * IntxUnpackedToInt8Tensor dequantizes with {@code dequantize_affine}, {@code (qdata - zero_point) * scale},
   * which for tinygemm's float zero gives other values (and no integer zero point equals it), so that type
   * name would make a torchao loader compute silently wrong weights. The metadata says
   * {@value #PLAIN_TYPE} instead, which torchao's {@code unflatten_tensor_state_dict} refuses by name
   * ("Unsupported tensor type") rather than misreads, and its {@code _data} records the zero point domain
   * and code range a reader needs.
   */
  PLAIN("plain", Int4Layout.PLAIN_TYPE, 1, null) {
    @Override
    public List<PartSpec> parts(long rows, long cols, int groupSize) {
      return List.of(
          new PartSpec("qdata", DType.I8, new long[] {rows, cols}, 0),
          new PartSpec("scale", DType.BF16, new long[] {rows, cols / groupSize}, 0),
          new PartSpec("zero_point", DType.BF16, new long[] {rows, cols / groupSize}, 0));
    }

    @Override
    public ObjectNode torchaoData(long[] shape, int groupSize) {
      ObjectNode data = TorchaoMetadata.object();
      data.set("target_dtype", TorchaoMetadata.dtype("int4"));
      data.set("block_size", TorchaoMetadata.ints(1, groupSize));
      data.set("dtype", TorchaoMetadata.dtype(DType.BF16.torchName()));
      data.put("quant_min", -PLAIN_OFFSET);
      data.put("quant_max", 15 - PLAIN_OFFSET);
      ObjectNode domain = data.putObject("zero_point_domain");
      domain.put("_type", "ZeroPointDomain");
      domain.put("_data", "FLOAT");
      return data;
    }

    @Override
    public Tensor packCodes(int[] codes, int n, int k) {
      int[] q = new int[codes.length];
      for (int i = 0; i < q.length; i++) {
        q[i] = codes[i] - PLAIN_OFFSET;
      }
      return Tensor.fromInts(DType.I8, new long[] {n, k}, q);
    }

    @Override
    public int[] unpackCodes(Tensor qdata, int n, int k) {
      int[] codes = qdata.toInts();
      for (int i = 0; i < codes.length; i++) {
        if (codes[i] < -PLAIN_OFFSET || codes[i] >= PLAIN_OFFSET) {
          throw new IllegalArgumentException("qdata " + codes[i] + " at [" + i / k + "][" + i % k
              + "] is outside the int4 range -8..7");
        }
        codes[i] += PLAIN_OFFSET;
      }
      return codes;
    }

    @Override
    public Map<String, Tensor> pack(UnpackedInt4 u) {
      Map<String, Tensor> parts = new LinkedHashMap<>();
      parts.put("qdata", packCodes(u.codes(), u.n(), u.k()));
      parts.put("scale", u.scale());
      parts.put("zero_point", u.zero());
      return parts;
    }

    @Override
    public UnpackedInt4 unpack(Map<String, Tensor> parts, int rows, int cols, int g, String what) {
      checkParts(parts, rows, cols, g, what);
      int[] codes;
      try {
        codes = unpackCodes(parts.get("qdata"), rows, cols);
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(what + ": " + e.getMessage(), e);
      }
      return new UnpackedInt4(rows, cols, g, codes, parts.get("scale"), parts.get("zero_point"));
    }
  };

  /** The plain form's metadata type: shardquant's, so that no torchao loader takes it for one of its own. */
  public static final String PLAIN_TYPE = "shardquant.Int4TinygemmUnpackedTensor";
  /** torchao's {@code Int4TilePackedTo4dTensor} fixes inner_k_tiles = 8 for the tiled layout. */
  public static final int INNER_K_TILES = 8;
  /** tinygemm's midpoint: plain code = tinygemm code - 8, so that tinygemm's (q - 8) is the stored value. */
  public static final int PLAIN_OFFSET = 8;

  private final String cliName;
  private final String torchaoType;
  private final int rowAlignment;
  private final String packingFormat;

  Int4Layout(String cliName, String torchaoType, int rowAlignment, String packingFormat) {
    this.cliName = cliName;
    this.torchaoType = torchaoType;
    this.rowAlignment = rowAlignment;
    this.packingFormat = packingFormat;
  }

  /** The name on the command line ({@code --layout tile-packed}). */
  public String cliName() {
    return cliName;
  }

  /** torchao's tensor subclass, the {@code _type} of the stored metadata. */
  public String torchaoType() {
    return torchaoType;
  }

  /**
   * torchao's {@code Int4PackingFormat} member for {@code Int4WeightOnlyConfig}, or null where no torchao
   * config loads this layout through torchao's safetensors support.
   */
  public String torchaoPackingFormat() {
    return packingFormat;
  }

  /** Row shards of this layout start at multiples of this many rows (the cpu layout's 64-row blocks). */
  public int rowAlignment() {
    return rowAlignment;
  }

  /** The stored (padded) row count N' of a weight or row shard of {@code rows} rows. */
  public long storedRows(long rows) {
    return rows;
  }

  /** The stored (padded) column count K' of a weight of {@code cols} columns. */
  public long storedCols(long cols) {
    return cols;
  }

  /** The recipe that writes this layout, or null for a form no recipe writes (the plain one). */
  public Recipe recipe() {
    for (Recipe r : Recipe.values()) {
      if (of(r) == this) {
        return r;
      }
    }
    return null;
  }

  /** The int4 layout {@code recipe} writes, or null for a recipe that is not tinygemm int4. */
  public static Int4Layout of(Recipe recipe) {
    return recipe.kernel() instanceof TinygemmInt4Recipe t ? t.layout() : null;
  }

  /** The stored parts' names, in the order of the metadata's {@code _tensor_data_names}. */
  public List<String> dataNames() {
    return parts(rowAlignment, 1024, 32).stream().map(PartSpec::name).toList();
  }

  /**
   * Why a [rows, cols] tinygemm int4 weight (or row shard) of group size {@code groupSize} cannot be stored
   * in this layout (a sentence), or null.
   */
  public String refusal(long rows, long cols, int groupSize) {
    if (this != TILE_PACKED && cols % groupSize != 0) {
      return "the " + cliName + " layout holds whole groups and needs K % " + groupSize + " == 0, got K = " + cols
          + " (its last group is part weight, part tile-packed padding); keep this tensor tile-packed";
    }
    return null;
  }

  /** The stored parts of a [rows, cols] weight (or row shard), with the dimension row shards concatenate along. */
  public abstract List<PartSpec> parts(long rows, long cols, int groupSize);

  /** torchao's {@code _data} for a weight of this shape (its constructor's non-tensor arguments). */
  public ObjectNode torchaoData(long[] shape, int groupSize) {
    return TorchaoMetadata.blockAndShape(new int[] {1, groupSize}, shape);
  }

  /** The per-tensor metadata value of the output checkpoint. */
  public String torchaoMetadata(long[] shape, int groupSize) {
    return TorchaoMetadata.tensor(torchaoType, torchaoData(shape, groupSize), dataNames());
  }

  /** Stored codes [n][k] (0..15, row-major; n and k already the stored sizes) to the qdata part. */
  public abstract Tensor packCodes(int[] codes, int n, int k);

  /** The qdata part of stored size [n][k] back to codes (0..15, row-major). */
  public abstract int[] unpackCodes(Tensor qdata, int n, int k);

  /** The stored parts of {@code u}, padded to this layout's stored size as torchao pads. */
  public Map<String, Tensor> pack(UnpackedInt4 u) {
    int n = Math.toIntExact(storedRows(u.n()));
    int k = Math.toIntExact(storedCols(u.k()));
    UnpackedInt4 p = n == u.n() && k == u.k() ? u : u.padded(n, k);
    Map<String, Tensor> parts = new LinkedHashMap<>();
    parts.put("qdata", packCodes(p.codes(), n, k));
    parts.put("scale_and_zero", TinygemmScaleZero.pack(p.scale(), p.zero()));
    return parts;
  }

  /**
   * The codes, scales and zeros of a [rows, cols] weight's stored {@code parts}, cropped to [rows, cols];
   * {@code what} names the tensor in errors.
   */
  public UnpackedInt4 unpack(Map<String, Tensor> parts, int rows, int cols, int g, String what) {
    checkParts(parts, rows, cols, g, what);
    Tensor sz = parts.get("scale_and_zero");
    return new UnpackedInt4(rows, cols, g, unpackCodes(parts.get("qdata"), rows, cols), TinygemmScaleZero.scale(sz),
        TinygemmScaleZero.zero(sz));
  }

  /** Checks a fixed-shape layout's parts against {@link #parts}, naming the tensor and the part. */
  void checkParts(Map<String, Tensor> parts, int rows, int cols, int g, String what) {
    for (PartSpec spec : parts(rows, cols, g)) {
      Tensor actual = part(parts, spec.name(), what);
      if (actual.dtype() != spec.dtype() || !Arrays.equals(actual.shape(), spec.shape())) {
        throw new IllegalArgumentException(what + ": part " + spec.name() + " must be " + spec + ", got " + actual);
      }
    }
  }

  private static Tensor part(Map<String, Tensor> parts, String name, String what) {
    Tensor t = parts.get(name);
    if (t == null) {
      throw new IllegalArgumentException(what + " has no part '" + name + "'; it has " + parts.keySet());
    }
    return t;
  }

  static long roundUp(long x, long multiple) {
    return (x + multiple - 1) / multiple * multiple;
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
