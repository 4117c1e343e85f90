package shardquant.kernels.backend.simd;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * Reads a bf16, f16 or f32 tensor's little-endian bytes (heap, direct or memory-mapped) as floats, a
 * block at a time into a float array the kernels then load vectors from. The SIMD kernels work on 8
 * float lanes (256 bits) everywhere, so a block's lane j always holds its elements j, j+8, ... and the
 * verification sums follow {@link shardquant.kernels.verify.QuantStats}'s 8-lane order on any CPU.
 *
 * <p>Why through arrays, on every JDK. The Vector API's loads from and stores to memory changed between
 * its versions: {@code fromByteBuffer}/{@code intoByteBuffer} exist up to Java 18 and are gone from 19
 * on (replaced by {@code fromMemorySegment}, which Java 17 lacks), so a kernel calling either one fails
 * with {@code NoSuchMethodError} on the other side. {@code fromArray}/{@code intoArray} exist in every
 * version. So each block of up to {@value #STAGE} halves is bulk-copied with the buffer's own
 * {@code ShortBuffer.get(int, short[], int, int)} (a memcpy intrinsic, 2 KiB that stay in L1) into a
 * scratch array and widened from there with {@code fromArray}; f32 is bulk-copied straight into the
 * caller's floats. One code path, the same class files and the same bytes on Java 17, 21 and 25: no
 * multi-release jar, no per-version source folder, nothing a version could break that the others do not
 * test. The copy costs little next to the kernels' arithmetic (README, "Backends and speed"), and
 * {@link shardquant.kernels.select.Backends} still checks every recipe against the reference on each
 * JVM before trusting these kernels.
 *
 * <p>One instance per shard and call (it holds the scratch array), so a thread never shares one.
 */
final class SimdLoad {
  static final VectorSpecies<Float> F = FloatVector.SPECIES_256;
  static final int LANES = F.length();
  private static final VectorSpecies<Short> S = ShortVector.SPECIES_128;
  private static final VectorSpecies<Integer> I = IntVector.SPECIES_256;
  /** Halves staged at a time: 2 KiB, a multiple of {@link #LANES}. */
  private static final int STAGE = 1024;

  private final DType dtype;
  /** The tensor's bytes as floats (f32) or as halves (bf16, f16); the other is null. */
  private final FloatBuffer floats;
  private final ShortBuffer halves;
  private final short[] staged;

  /** A reader of {@code t}'s elements by flat index. */
  SimdLoad(Tensor t) {
    this(t.bytes(), t.dtype());
  }

  SimdLoad(ByteBuffer bytes, DType dtype) {
    // Absolute from byte 0, whatever the buffer's position, in little-endian order whatever its order.
    ByteBuffer le = bytes.slice(0, bytes.limit()).order(ByteOrder.LITTLE_ENDIAN);
    this.dtype = dtype;
    switch (dtype) {
      case F32 -> {
        this.floats = le.asFloatBuffer();
        this.halves = null;
        this.staged = null;
      }
      case BF16, F16 -> {
        this.floats = null;
        this.halves = le.asShortBuffer();
        this.staged = new short[STAGE];
      }
      default -> throw new IllegalArgumentException("SIMD kernels read F32, BF16 or F16, not " + dtype);
    }
  }

  /** Elements [from, from + n) into {@code dst[at ..]}, as floats. */
  void decode(int from, float[] dst, int at, int n) {
    if (floats != null) {
      floats.get(from, dst, at, n);
      return;
    }
    for (int done = 0; done < n; done += STAGE) {
      int m = Math.min(STAGE, n - done);
      halves.get(from + done, staged, 0, m);
      if (dtype == DType.BF16) {
        widenBf16(staged, m, dst, at + done);
      } else {
        widenF16(staged, m, dst, at + done);
      }
    }
  }

  /** Element {@code i}, as a float (tails and error messages). */
  float scalar(int i) {
    return floats != null ? floats.get(i) : scalar(halves.get(i), dtype);
  }

  private static float scalar(short half, DType dtype) {
    return dtype == DType.BF16 ? Float.intBitsToFloat((half & 0xffff) << 16) : shardquant.kernels.dtype.F16.toFloat(half);
  }

  /** The first {@code n} lanes. */
  static VectorMask<Float> firstLanes(int n) {
    return F.indexInRange(0, n);
  }

  // One loop per dtype, with each vector born and consumed inside it, conversions written out in the loop:
  // a vector crossing a call that C2 did not inline becomes a heap object, and Java 17's C2 does not
  // inline a callee whose separately compiled code is large (InlineSmallCode), as vector code is.

  /** bf16 is the top half of a float32: widen and shift. */
  private static void widenBf16(short[] h, int n, float[] dst, int at) {
    int full = n & -LANES;
    for (int k = 0; k < full; k += LANES) {
      IntVector i = (IntVector) ShortVector.fromArray(S, h, k).convertShape(VectorOperators.S2I, I, 0);
      i.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(dst, at + k);
    }
    for (int k = full; k < n; k++) {
      dst[at + k] = scalar(h[k], DType.BF16);
    }
  }

  /**
   * IEEE half to float, exactly: the half's exponent and mantissa shifted into float position and
   * scaled by 2^112 (rebiasing 15 to 127; exact for normals and subnormals), inf/NaN given the float
   * exponent, then the sign.
   */
  private static void widenF16(short[] h, int n, float[] dst, int at) {
    int full = n & -LANES;
    for (int k = 0; k < full; k += LANES) {
      IntVector half = (IntVector) ShortVector.fromArray(S, h, k).convertShape(VectorOperators.S2I, I, 0);
      IntVector magnitude = half.and(0x7fff);
      FloatVector finite = magnitude.lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(0x1p112f);
      VectorMask<Integer> special = magnitude.compare(VectorOperators.GE, 0x7c00);
      IntVector specialBits = magnitude.lanewise(VectorOperators.LSHL, 13).or(0x7f800000);
      IntVector bits = finite.reinterpretAsInts().blend(specialBits, special);
      bits.or(half.and(0x8000).lanewise(VectorOperators.LSHL, 16)).reinterpretAsFloats().intoArray(dst, at + k);
    }
    for (int k = full; k < n; k++) {
      dst[at + k] = scalar(h[k], DType.F16);
    }
  }
}
