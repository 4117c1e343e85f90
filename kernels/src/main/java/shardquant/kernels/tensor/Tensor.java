package shardquant.kernels.tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.function.ObjIntConsumer;
import shardquant.kernels.dtype.Bf16;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.dtype.F16;

/**
 * A host tensor: dtype, shape and contiguous row-major little-endian bytes (the safetensors layout).
 * The bytes may be a view of a memory-mapped file; this class never copies them unless asked.
 */
public final class Tensor {
  private final DType dtype;
  private final long[] shape;
  private final ByteBuffer data;
  /** numel(shape), taken once: every element access checks its index against it. */
  private final long numel;
  /** Where the job read these bytes from, or null: see {@link #withOrigin}. */
  private final Origin origin;

  /**
   * Where a job read a tensor's bytes from, so a device backend may recognize the same bytes in a later
   * stage of the same job (CUDA keeps NF4's first-pass upload for its second pass): {@code job} names the
   * run (entries of another run are stale), {@code source} the bytes within it (file, offset, length).
   * Two tensors with equal origins, dtypes and shapes hold the same bytes; nothing else reads it.
   */
  public record Origin(String job, String source) {
    public Origin {
      java.util.Objects.requireNonNull(job, "job");
      java.util.Objects.requireNonNull(source, "source");
    }
  }

  private Tensor(DType dtype, long[] shape, ByteBuffer data) {
    this(dtype, shape, data, null);
  }

  private Tensor(DType dtype, long[] shape, ByteBuffer data, Origin origin) {
    this.dtype = dtype;
    this.shape = shape.clone();
    this.numel = numel(this.shape);
    this.data = data.slice().order(ByteOrder.LITTLE_ENDIAN);
    this.origin = origin;
  }

  /**
   * This tensor (the same bytes, not a copy) marked as read from {@code origin}; null clears the mark.
   * The caller vouches that every tensor it marks with an equal origin, dtype and shape holds equal bytes.
   * Views made from the result ({@link #rowSlice}, {@link #reshape}) carry no origin.
   */
  public Tensor withOrigin(Origin origin) {
    return new Tensor(dtype, shape, data, origin);
  }

  /** Where these bytes were read from ({@link #withOrigin}), or null. */
  public Origin origin() {
    return origin;
  }

  /** Wraps bytes (position to limit) without copying; their count must match dtype and shape. */
  public static Tensor of(DType dtype, long[] shape, ByteBuffer data) {
    long expected = numel(shape) * dtype.byteSize();
    if (data.remaining() != expected) {
      throw new IllegalArgumentException("tensor of " + dtype + " " + Arrays.toString(shape) + " needs "
          + expected + " bytes, got " + data.remaining());
    }
    return new Tensor(dtype, shape, data);
  }

  public static Tensor allocate(DType dtype, long... shape) {
    long bytes = numel(shape) * dtype.byteSize();
    if (bytes > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("tensor of " + bytes + " bytes is too large for one host buffer");
    }
    return new Tensor(dtype, shape, ByteBuffer.allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN));
  }

  /** Stores float values into a floating dtype, rounding to nearest even. */
  public static Tensor fromFloats(DType dtype, long[] shape, float[] values) {
    return filled(dtype, shape, values.length, (t, i) -> t.setFloat(i, values[i]));
  }

  /** Stores integer values into an integer dtype; a value out of its range is an error. */
  public static Tensor fromInts(DType dtype, long[] shape, int[] values) {
    return filled(dtype, shape, values.length, (t, i) -> t.setInt(i, values[i]));
  }

  /** A new tensor of {@code count} elements, element {@code i} stored by {@code set.accept(tensor, i)}. */
  private static Tensor filled(DType dtype, long[] shape, int count, ObjIntConsumer<Tensor> set) {
    checkCount(shape, count);
    Tensor t = allocate(dtype, shape);
    for (int i = 0; i < count; i++) {
      set.accept(t, i);
    }
    return t;
  }

  public DType dtype() {
    return dtype;
  }

  public long[] shape() {
    return shape.clone();
  }

  public int rank() {
    return shape.length;
  }

  public long numel() {
    return numel;
  }

  public long rows() {
    requireRank2();
    return shape[0];
  }

  public long cols() {
    requireRank2();
    return shape[1];
  }

  /** The bytes, little-endian, position 0; a view, not a copy. */
  public ByteBuffer bytes() {
    return data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
  }

  public long byteSize() {
    return data.capacity();
  }

  public float getFloat(long i) {
    int at = byteIndex(i);
    switch (dtype) {
      case F32: return data.getFloat(at);
      case BF16: return Bf16.toFloat(data.getShort(at));
      case F16: return F16.toFloat(data.getShort(at));
      default: return getInt(i);
    }
  }

  public void setFloat(long i, float v) {
    int at = byteIndex(i);
    switch (dtype) {
      case F32: data.putFloat(at, v); break;
      case BF16: data.putShort(at, Bf16.fromFloat(v)); break;
      case F16: data.putShort(at, F16.fromFloat(v)); break;
      default: throw new IllegalStateException("setFloat on " + dtype + " tensor");
    }
  }

  public int getInt(long i) {
    int at = byteIndex(i);
    switch (dtype) {
      case I8: return data.get(at);
      case U8: case BOOL: return data.get(at) & 0xFF;
      case I16: return data.getShort(at);
      case I32: return data.getInt(at);
      case I64: return Math.toIntExact(data.getLong(at));
      default: throw new IllegalStateException("getInt on " + dtype + " tensor");
    }
  }

  public void setInt(long i, int v) {
    if (v < dtype.minValue() || v > dtype.maxValue()) {
      throw new IllegalArgumentException("value " + v + " at index " + i + " does not fit " + dtype);
    }
    int at = byteIndex(i);
    switch (dtype) {
      case I8: case U8: case BOOL: data.put(at, (byte) v); break;
      case I16: data.putShort(at, (short) v); break;
      case I32: data.putInt(at, v); break;
      case I64: data.putLong(at, v); break;
      default: throw new IllegalStateException("setInt on " + dtype + " tensor");
    }
  }

  public float[] toFloats() {
    float[] out = new float[Math.toIntExact(numel())];
    for (int i = 0; i < out.length; i++) {
      out[i] = getFloat(i);
    }
    return out;
  }

  public int[] toInts() {
    int[] out = new int[Math.toIntExact(numel())];
    for (int i = 0; i < out.length; i++) {
      out[i] = getInt(i);
    }
    return out;
  }

  /** The same bytes seen with another shape of the same element count. */
  public Tensor reshape(long... newShape) {
    if (numel(newShape) != numel()) {
      throw new IllegalArgumentException("cannot reshape " + Arrays.toString(shape) + " to " + Arrays.toString(newShape));
    }
    return new Tensor(dtype, newShape, data);
  }

  /** Rows [from, to) of the first dimension, as a view. */
  public Tensor rowSlice(long from, long to) {
    if (shape.length == 0 || from < 0 || to > shape[0] || from > to) {
      throw new IllegalArgumentException("rows [" + from + ", " + to + ") outside tensor of shape " + Arrays.toString(shape));
    }
    long rowBytes = numel(shape) / Math.max(1, shape[0]) * dtype.byteSize();
    long[] s = shape.clone();
    s[0] = to - from;
    ByteBuffer view = data.duplicate();
    view.position(Math.toIntExact(from * rowBytes)).limit(Math.toIntExact(to * rowBytes));
    return new Tensor(dtype, s, view);
  }

  /**
   * A 2-D tensor of {@code r} rows and {@code c} columns holding this one's top-left corner, zero
   * elsewhere: zero padding when it grows, cropping (undoing the padding) when it shrinks.
   */
  public Tensor resized(long r, long c) {
    if (r < 0 || c < 0) {
      throw new IllegalArgumentException("cannot resize " + this + " to " + r + " x " + c);
    }
    if (r == rows() && c == cols()) {
      return this;
    }
    Tensor out = allocate(dtype, r, c);
    int copyBytes = Math.toIntExact(Math.min(c, cols()) * dtype.byteSize());
    for (long i = 0; i < Math.min(r, rows()); i++) {
      out.data.put(Math.toIntExact(i * c * dtype.byteSize()), data, Math.toIntExact(i * cols() * dtype.byteSize()),
          copyBytes);
    }
    return out;
  }

  public boolean contentEquals(Tensor other) {
    return dtype == other.dtype && Arrays.equals(shape, other.shape) && bytes().equals(other.bytes());
  }

  @Override
  public String toString() {
    return dtype.torchName() + Arrays.toString(shape);
  }

  /**
   * Rows in each row shard of a tensor (the last may have fewer): as many rows of {@code rowBytes} as fit
   * in {@code shardBytes}, a multiple of {@code align}, at least {@code align}. The job's planner and the
   * bench cut tensors with it.
   */
  public static long rowsPerShard(long rowBytes, long shardBytes, long align) {
    long perShard = Math.max(1, shardBytes / Math.max(1, rowBytes));
    return Math.max(align, perShard / align * align);
  }

  public static long numel(long[] shape) {
    long n = 1;
    for (long d : shape) {
      if (d < 0) {
        throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
      }
      n = Math.multiplyExact(n, d);
    }
    return n;
  }

  private static void checkCount(long[] shape, int count) {
    if (numel(shape) != count) {
      throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " holds " + numel(shape)
          + " elements, got " + count + " values");
    }
  }

  private int byteIndex(long i) {
    if (i < 0 || i >= numel) {
      throw new IndexOutOfBoundsException("index " + i + " outside tensor of shape " + Arrays.toString(shape));
    }
    return (int) (i * dtype.byteSize());
  }

  private void requireRank2() {
    if (shape.length != 2) {
      throw new IllegalStateException("expected a 2-D tensor, got shape " + Arrays.toString(shape));
    }
  }
}
