package shardquant.kernels.backend.simd;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * Loads 8 consecutive elements of a bf16, f16 or f32 tensor as one float vector, straight from the
 * tensor's little-endian bytes (heap, direct or memory-mapped). The SIMD kernels work on 8 float lanes
 * (256 bits) everywhere, so a block's lane j always holds its elements j, j+8, ... and the verification
 * sums follow {@link shardquant.kernels.verify.QuantStats}'s 8-lane order on any CPU.
 */
final class SimdLoad {
  static final VectorSpecies<Float> F = FloatVector.SPECIES_256;
  static final int LANES = F.length();
  private static final VectorSpecies<Short> S = ShortVector.SPECIES_128;
  private static final VectorSpecies<Integer> I = IntVector.SPECIES_256;
  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

  private SimdLoad() {}

  /** Elements [i, i + 8) of {@code t} (flat index); the caller keeps i + 8 within the tensor. */
  static FloatVector load(Tensor t, ByteBuffer bytes, long i) {
    return load(bytes, t.dtype(), Math.toIntExact(i));
  }

  static FloatVector load(ByteBuffer bytes, DType dtype, int i) {
    return switch (dtype) {
      case F32 -> FloatVector.fromByteBuffer(F, bytes, i * 4, LE);
      case BF16 -> bf16(ShortVector.fromByteBuffer(S, bytes, i * 2, LE));
      case F16 -> f16(ShortVector.fromByteBuffer(S, bytes, i * 2, LE));
      default -> throw new IllegalArgumentException("SIMD kernels read F32, BF16 or F16, not " + dtype);
    };
  }

  /**
   * Elements [from, from + n) into {@code dst[at ..]}, as floats. Hot loops should decode a chunk into
   * an array and work on that, rather than call {@link #load} per vector: on JDK 17, C2 does not always
   * inline {@code load} (its compiled code is over InlineSmallCode) and then boxes every vector it returns.
   */
  static void decode(ByteBuffer bytes, DType dtype, int from, float[] dst, int at, int n) {
    int full = n - n % LANES;
    switch (dtype) {
      case F32 -> {
        for (int k = 0; k < full; k += LANES) {
          FloatVector.fromByteBuffer(F, bytes, (from + k) * 4, LE).intoArray(dst, at + k);
        }
      }
      case BF16 -> {
        for (int k = 0; k < full; k += LANES) {
          bf16(ShortVector.fromByteBuffer(S, bytes, (from + k) * 2, LE)).intoArray(dst, at + k);
        }
      }
      case F16 -> {
        for (int k = 0; k < full; k += LANES) {
          f16(ShortVector.fromByteBuffer(S, bytes, (from + k) * 2, LE)).intoArray(dst, at + k);
        }
      }
      default -> throw new IllegalArgumentException("SIMD kernels read F32, BF16 or F16, not " + dtype);
    }
    for (int k = full; k < n; k++) {
      dst[at + k] = scalar(bytes, dtype, from + k);
    }
  }

  /** Elements [i, i + n) for n < 8, the other lanes 0. */
  static FloatVector loadTail(ByteBuffer bytes, DType dtype, int i, int n) {
    float[] v = new float[LANES];
    for (int k = 0; k < n; k++) {
      v[k] = scalar(bytes, dtype, i + k);
    }
    return FloatVector.fromArray(F, v, 0);
  }

  static float scalar(ByteBuffer bytes, DType dtype, int i) {
    return switch (dtype) {
      case F32 -> bytes.getFloat(i * 4);
      case BF16 -> Float.intBitsToFloat((bytes.getShort(i * 2) & 0xffff) << 16);
      case F16 -> shardquant.kernels.dtype.F16.toFloat(bytes.getShort(i * 2));
      default -> throw new IllegalArgumentException("SIMD kernels read F32, BF16 or F16, not " + dtype);
    };
  }

  /** The first {@code n} lanes. */
  static VectorMask<Float> firstLanes(int n) {
    return F.indexInRange(0, n);
  }

  /** bf16 is the top half of a float32: widen and shift. */
  private static FloatVector bf16(ShortVector s) {
    IntVector i = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
    return i.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
  }

  /**
   * IEEE half to float, exactly: the half's exponent and mantissa shifted into float position and
   * scaled by 2^112 (rebiasing 15 to 127; exact for normals and subnormals), inf/NaN given the float
   * exponent, then the sign.
   */
  private static FloatVector f16(ShortVector s) {
    IntVector h = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
    IntVector magnitude = h.and(0x7fff);
    FloatVector finite = magnitude.lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(0x1p112f);
    VectorMask<Integer> special = magnitude.compare(VectorOperators.GE, 0x7c00);
    IntVector specialBits = magnitude.lanewise(VectorOperators.LSHL, 13).or(0x7f800000);
    IntVector bits = finite.reinterpretAsInts().blend(specialBits, special);
    return bits.or(h.and(0x8000).lanewise(VectorOperators.LSHL, 16)).reinterpretAsFloats();
  }
}
