package shardquant.kernels.tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import shardquant.kernels.dtype.Bf16;
import shardquant.kernels.dtype.DType;

/**
 * Deterministic pseudo-random bf16 weights, {@code center + 0.02·z} with z approximately standard normal
 * (0.02 is Hugging Face's {@code initializer_range}): the values of the synthetic checkpoints, and of the
 * benchmarks' inputs. Each tensor draws from its own stream, seeded by the seed and the tensor's name,
 * so a tensor's values do not depend on which other tensors are generated or in what order.
 *
 * <p>z is the centered sum of the four 16-bit fields of one xorshift64* draw (Irwin-Hall with four
 * terms, bounded at 3.46 sigma): one draw and no allocation per element.
 */
public final class SyntheticWeights {
  private static final double WEIGHT_STD = 0.02;
  private static final double FIELD_MEAN = 4 * 65535 / 2.0;
  private static final double FIELD_STD = Math.sqrt(4 * (65536.0 * 65536.0 - 1) / 12);
  private static final int CHUNK_ELEMENTS = 1 << 16;

  private final float scale = (float) (WEIGHT_STD / FIELD_STD);
  private final float offset;
  private long state;

  /** The stream of tensor {@code name}; {@code center} is 0 for weights and 1 for norm weights. */
  public SyntheticWeights(long seed, String name, float center) {
    this.offset = (float) (center - FIELD_MEAN * WEIGHT_STD / FIELD_STD);
    state = mix(seed ^ mix(name.hashCode() * 0x9E3779B97F4A7C15L));
    if (state == 0) {
      state = 0x9E3779B97F4A7C15L; // xorshift never leaves 0
    }
  }

  /** A [rows, cols] bf16 weight tensor (center 0) in a direct buffer, as the checkpoint would hold tensor {@code name}. */
  public static Tensor directBf16(long seed, String name, long rows, long cols) {
    long bytes = rows * cols * DType.BF16.byteSize();
    if (rows < 1 || cols < 1 || bytes > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("cannot hold a bf16 tensor of " + rows + " x " + cols + " in one buffer");
    }
    ByteBuffer data = ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
    new SyntheticWeights(seed, name, 0.0f).fill(data);
    data.flip();
    return Tensor.of(DType.BF16, new long[] {rows, cols}, data);
  }

  /** The next {@code n} values, as bf16 bits. */
  public void fill(short[] out, int n) {
    long x = state;
    for (int i = 0; i < n; i++) {
      x ^= x >>> 12;
      x ^= x << 25;
      x ^= x >>> 27;
      long r = x * 0x2545F4914F6CDD1DL;
      int sum = (int) (r & 0xFFFF) + (int) ((r >>> 16) & 0xFFFF) + (int) ((r >>> 32) & 0xFFFF) + (int) (r >>> 48);
      out[i] = Bf16.fromFloat(sum * scale + offset);
    }
    state = x;
  }

  /** Fills {@code out} from its position to its limit (an even count of bytes) with the next values, little-endian. */
  public void fill(ByteBuffer out) {
    if (out.remaining() % 2 != 0) {
      throw new IllegalArgumentException("bf16 values need an even number of bytes, got " + out.remaining());
    }
    ByteBuffer le = out.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    short[] values = new short[(int) Math.min(CHUNK_ELEMENTS, le.remaining() / 2)];
    while (le.hasRemaining()) {
      int n = Math.min(values.length, le.remaining() / 2);
      fill(values, n);
      le.asShortBuffer().put(values, 0, n);
      le.position(le.position() + 2 * n);
    }
    out.position(out.limit());
  }

  /** SplitMix64's finalizer: spreads a seed's bits so nearby seeds give unrelated streams. */
  private static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }
}
