package shardquant.kernels.dtype;

import java.util.Arrays;

/**
 * The element types of a safetensors file, named as safetensors names them: every dtype of the
 * reference crate ({@code safetensors/src/tensor.rs}, {@code Dtype}) whose elements are whole bytes, so
 * any tensor can be read and copied unchanged. Computing is narrower: {@link #quantizable()} dtypes are
 * the floating ones shardquant computes with and the recipes take; for them {@link #round(float)} gives
 * the float32 value a PyTorch op on a tensor of this dtype stores (PyTorch computes bf16/f16 ops in
 * float32 and rounds the result to the tensor's dtype). The others are bytes to shardquant.
 *
 * <p>Constants are only ever appended: Kryo serializes an enum by its ordinal.
 */
public enum DType {
  F32("F32", 4, true, "float32"),
  BF16("BF16", 2, true, "bfloat16"),
  F16("F16", 2, true, "float16"),
  I8("I8", 1, false, "int8"),
  U8("U8", 1, false, "uint8"),
  I16("I16", 2, false, "int16"),
  I32("I32", 4, false, "int32"),
  I64("I64", 8, false, "int64"),
  BOOL("BOOL", 1, false, "bool"),
  U16("U16", 2, false, "uint16"),
  U32("U32", 4, false, "uint32"),
  U64("U64", 8, false, "uint64"),
  F64("F64", 8, true, "float64"),
  /** The weights of FP8 checkpoints (DeepSeek-V3, Qwen3-FP8). */
  F8_E4M3("F8_E4M3", 1, true, "float8_e4m3fn"),
  F8_E5M2("F8_E5M2", 1, true, "float8_e5m2"),
  F8_E4M3FNUZ("F8_E4M3FNUZ", 1, true, "float8_e4m3fnuz"),
  F8_E5M2FNUZ("F8_E5M2FNUZ", 1, true, "float8_e5m2fnuz"),
  /** The power-of-two block scales of the OCP microscaling (MX) formats. */
  F8_E8M0("F8_E8M0", 1, true, "float8_e8m0fnu"),
  /** Two float32 values, real then imaginary. */
  C64("C64", 8, false, "complex64");

  /**
   * Safetensors dtypes whose elements are narrower than a byte (the MX element formats, packed):
   * shardquant's byte-sized shapes cannot describe them, so a file holding one is refused by name.
   */
  public static final java.util.Set<String> SUB_BYTE = java.util.Set.of("F4", "F6_E2M3", "F6_E3M2");

  private final String safetensorsName;
  private final int byteSize;
  private final boolean floating;
  private final String torchName;

  DType(String safetensorsName, int byteSize, boolean floating, String torchName) {
    this.safetensorsName = safetensorsName;
    this.byteSize = byteSize;
    this.floating = floating;
    this.torchName = torchName;
  }

  public String safetensorsName() {
    return safetensorsName;
  }

  /** PyTorch's name without the {@code torch.} prefix, as torchao's metadata writes it. */
  public String torchName() {
    return torchName;
  }

  public int byteSize() {
    return byteSize;
  }

  /** A real floating-point format, of any width (F8_E4M3 and F64 too); see {@link #quantizable()}. */
  public boolean isFloating() {
    return floating;
  }

  /**
   * F32, BF16 and F16: the dtypes shardquant computes with ({@link #round}, {@code Tensor.getFloat}) and
   * so the only ones a recipe takes. Tensors of any other dtype are copied.
   */
  public boolean quantizable() {
    return this == F32 || this == BF16 || this == F16;
  }

  /** The {@link #quantizable()} dtypes' safetensors names, for messages: "F32, BF16, F16". */
  public static String quantizableNames() {
    return Arrays.stream(values()).filter(DType::quantizable).map(DType::safetensorsName)
        .collect(java.util.stream.Collectors.joining(", "));
  }

  /** Rounds to nearest even into this floating dtype (identity for F32). */
  public float round(float value) {
    switch (this) {
      case F32:
        return value;
      case BF16:
        return Bf16.round(value);
      case F16:
        return shardquant.kernels.dtype.F16.round(value); // the class, not the enum constant F16
      default:
        throw new IllegalStateException(this + " is not a dtype shardquant computes with (" + quantizableNames() + ")");
    }
  }

  /** Smallest and largest value of an integer dtype that {@code Tensor} reads as ints. */
  public long minValue() {
    switch (this) {
      case I8: return Byte.MIN_VALUE;
      case U8: case BOOL: return 0;
      case I16: return Short.MIN_VALUE;
      case I32: return Integer.MIN_VALUE;
      case I64: return Long.MIN_VALUE;
      default: throw new IllegalStateException(this + " is not an integer dtype shardquant computes with");
    }
  }

  public long maxValue() {
    switch (this) {
      case I8: return Byte.MAX_VALUE;
      case U8: return 255;
      case BOOL: return 1;
      case I16: return Short.MAX_VALUE;
      case I32: return Integer.MAX_VALUE;
      case I64: return Long.MAX_VALUE;
      default: throw new IllegalStateException(this + " is not an integer dtype shardquant computes with");
    }
  }

  /** Looks up a safetensors dtype name ("BF16"); null if this project does not know it. */
  public static DType fromSafetensorsOrNull(String name) {
    for (DType d : values()) {
      if (d.safetensorsName.equals(name)) {
        return d;
      }
    }
    return null;
  }

  public static DType fromSafetensors(String name) {
    DType d = fromSafetensorsOrNull(name);
    if (d == null) {
      throw new IllegalArgumentException("unknown safetensors dtype '" + name + "'; known: "
          + Arrays.toString(Arrays.stream(values()).map(DType::safetensorsName).toArray()));
    }
    return d;
  }

  /** Looks up PyTorch's name ("bfloat16", "torch.int8"). */
  public static DType fromTorchName(String name) {
    String bare = name.startsWith("torch.") ? name.substring("torch.".length()) : name;
    for (DType d : values()) {
      if (d.torchName.equals(bare)) {
        return d;
      }
    }
    throw new IllegalArgumentException("unknown torch dtype '" + name + "'");
  }
}
