package shardquant.kernels.dtype;

import java.util.Arrays;

/**
 * The element types shardquant reads and writes, named as safetensors names them. For the floating
 * types, {@link #round(float)} gives the float32 value a PyTorch op on a tensor of this dtype stores:
 * PyTorch computes bf16/f16 ops in float32 and rounds the result to the tensor's dtype.
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
  BOOL("BOOL", 1, false, "bool");

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

  public boolean isFloating() {
    return floating;
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
        throw new IllegalStateException(this + " is not a floating dtype");
    }
  }

  /** Smallest and largest value of an integer dtype. */
  public long minValue() {
    switch (this) {
      case I8: return Byte.MIN_VALUE;
      case U8: case BOOL: return 0;
      case I16: return Short.MIN_VALUE;
      case I32: return Integer.MIN_VALUE;
      case I64: return Long.MIN_VALUE;
      default: throw new IllegalStateException(this + " is not an integer dtype");
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
      default: throw new IllegalStateException(this + " is not an integer dtype");
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
