package shardquant.kernels.layout;

import java.nio.ByteBuffer;
import java.util.Arrays;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * tinygemm's combined scale and zero point tensor, read by both {@code aten._weight_int4pack_mm} (CUDA) and
 * {@code _weight_int4pack_mm_for_cpu}.
 *
 * <p>Layout, matching torchao {@code pack_tinygemm_scales_and_zeros(scale, zero)}
 * ({@code torchao/quantization/utils.py}: {@code torch.cat([scale[..., None], zero[..., None]], 2)
 * .transpose(0, 1).contiguous()}): bf16 scale[N][G] and zero[N][G], G = K / group size, become bf16
 * {@code sz[G][N][2]} with {@code sz[g][n][0] = scale[n][g]} and {@code sz[g][n][1] = zero[n][g]}. Values are
 * moved, never rounded. torchao requires both inputs bf16 (its {@code guard_dtype_size}), and so does this class.
 * {@link #scale} and {@link #zero} undo it, as torchao's {@code unpack_tinygemm_scales_and_zeros} does
 * (without its trailing dimension of 1).
 */
public final class TinygemmScaleZero {
  private static final String LAYOUT = "tinygemm scale_and_zero";

  private TinygemmScaleZero() {}

  /** bf16 scale [N][G] and zero [N][G] to bf16 scale_and_zero [G][N][2]. */
  public static Tensor pack(Tensor scale, Tensor zero) {
    requireBf16("scale", scale, 2);
    requireBf16("zero", zero, 2);
    if (!Arrays.equals(scale.shape(), zero.shape())) {
      throw new IllegalArgumentException(LAYOUT + " needs scale and zero of one shape, got scale "
          + Arrays.toString(scale.shape()) + " and zero " + Arrays.toString(zero.shape()));
    }
    int n = Math.toIntExact(scale.rows());
    int groups = Math.toIntExact(scale.cols());
    Tensor out = Tensor.allocate(DType.BF16, groups, n, 2);
    ByteBuffer s = scale.bytes();
    ByteBuffer z = zero.bytes();
    ByteBuffer o = out.bytes();
    for (int r = 0; r < n; r++) {
      for (int g = 0; g < groups; g++) {
        int from = 2 * (r * groups + g);
        int to = 2 * 2 * (g * n + r);
        o.putShort(to, s.getShort(from));
        o.putShort(to + 2, z.getShort(from));
      }
    }
    return out;
  }

  /** The bf16 scale [N][G] of a scale_and_zero [G][N][2]. */
  public static Tensor scale(Tensor scaleAndZero) {
    return channel(scaleAndZero, 0);
  }

  /** The bf16 zero [N][G] of a scale_and_zero [G][N][2]. */
  public static Tensor zero(Tensor scaleAndZero) {
    return channel(scaleAndZero, 1);
  }

  private static Tensor channel(Tensor scaleAndZero, int c) {
    requireBf16("scale_and_zero", scaleAndZero, 3);
    long[] shape = scaleAndZero.shape();
    if (shape[2] != 2) {
      throw new IllegalArgumentException(LAYOUT + " needs a last dimension of 2, got shape " + Arrays.toString(shape));
    }
    int groups = Math.toIntExact(shape[0]);
    int n = Math.toIntExact(shape[1]);
    Tensor out = Tensor.allocate(DType.BF16, n, groups);
    ByteBuffer sz = scaleAndZero.bytes();
    ByteBuffer o = out.bytes();
    for (int r = 0; r < n; r++) {
      for (int g = 0; g < groups; g++) {
        o.putShort(2 * (r * groups + g), sz.getShort(2 * (2 * (g * n + r) + c)));
      }
    }
    return out;
  }

  private static void requireBf16(String name, Tensor t, int rank) {
    if (t.dtype() != DType.BF16 || t.rank() != rank) {
      throw new IllegalArgumentException(LAYOUT + " needs " + name + " as a " + rank + "-D bfloat16 tensor, got "
          + t.dtype().torchName() + " " + Arrays.toString(t.shape()));
    }
  }
}
