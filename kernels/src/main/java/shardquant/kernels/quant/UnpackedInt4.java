package shardquant.kernels.quant;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * What every {@link Int4Layout} holds, unpacked: tinygemm's uint4 codes q[n][k] (0..15, row-major) and its
 * bf16 scale and FLOAT-domain zero [n][k/g]. The int4 recipes quantize to this form (at the stored, padded
 * size) and every layout conversion goes through it (at the original size), so no value is ever recomputed
 * from weights.
 */
public record UnpackedInt4(int n, int k, int groupSize, int[] codes, Tensor scale, Tensor zero) {

  /**
   * What torchao's zero padding of the weight quantizes to: the code of a padded element and the bf16 bits
   * of the scale and zero of a group that is all padding. tinygemm's qparams depend on a group alone, so
   * every padded row and every group past K (K a multiple of the group size) holds exactly these.
   */
  public record Padding(int code, short scaleBits, short zeroBits) {
    private static final Map<Integer, Padding> BY_GROUP = new ConcurrentHashMap<>();

    public static Padding of(int groupSize) {
      return BY_GROUP.computeIfAbsent(groupSize, Padding::compute);
    }

    private static Padding compute(int groupSize) {
      Tensor zeros = Tensor.allocate(DType.BF16, 1, groupSize);
      AffineSpec spec = AffineSpec.tinygemmInt4(groupSize, DType.BF16);
      QParams qp = AffineQuantRef.chooseQParams(zeros, spec);
      int code = AffineQuantRef.quantize(zeros, spec, qp).getInt(0);
      return new Padding(code, qp.scale().bytes().getShort(0), qp.zeroPoint().bytes().getShort(0));
    }
  }

  /**
   * This tensor zero-padded to {@code rows x cols} codes as torchao pads before quantizing: the new codes,
   * scales and zeros are those of {@link Padding}.
   */
  UnpackedInt4 padded(int rows, int cols) {
    Padding pad = Padding.of(groupSize);
    int[] out = new int[Math.multiplyExact(rows, cols)];
    Arrays.fill(out, pad.code());
    for (int r = 0; r < n; r++) {
      System.arraycopy(codes, r * k, out, r * cols, k);
    }
    return new UnpackedInt4(rows, cols, groupSize, out, padGroups(scale, rows, cols / groupSize, pad.scaleBits()),
        padGroups(zero, rows, cols / groupSize, pad.zeroBits()));
  }

  /**
   * This tensor, stored padded, cropped to its first {@code rows x cols} codes; the padding must be exactly
   * {@link #padded}'s, or the crop would drop data and a round trip could not give the bytes back.
   * {@code what} names the tensor for the error.
   */
  UnpackedInt4 cropped(int rows, int cols, String what) {
    Padding pad = Padding.of(groupSize);
    int groups = cols / groupSize;
    for (int r = 0; r < n; r++) {
      for (int c = r < rows ? cols : 0; c < k; c++) {
        if (codes[r * k + c] != pad.code()) {
          throw notZeroPadding(what, "code " + codes[r * k + c] + " at [" + r + "][" + c + "]", "code " + pad.code());
        }
      }
    }
    checkPadGroups(scale, rows, groups, pad.scaleBits(), "scale", what);
    checkPadGroups(zero, rows, groups, pad.zeroBits(), "zero", what);
    int[] out = new int[Math.multiplyExact(rows, cols)];
    for (int r = 0; r < rows; r++) {
      System.arraycopy(codes, r * k, out, r * cols, cols);
    }
    return new UnpackedInt4(rows, cols, groupSize, out, scale.resized(rows, groups), zero.resized(rows, groups));
  }

  private static Tensor padGroups(Tensor t, int rows, int groups, short bits) {
    int keptRows = Math.toIntExact(t.rows());
    int keptGroups = Math.toIntExact(t.cols());
    Tensor out = t.resized(rows, groups);
    ByteBuffer b = out.bytes();
    for (int r = 0; r < rows; r++) {
      for (int g = r < keptRows ? keptGroups : 0; g < groups; g++) {
        b.putShort(2 * (r * groups + g), bits);
      }
    }
    return out;
  }

  private static void checkPadGroups(Tensor t, int rows, int groups, short bits, String name, String what) {
    int allGroups = Math.toIntExact(t.cols());
    ByteBuffer b = t.bytes();
    for (int r = 0; r < t.rows(); r++) {
      for (int g = r < rows ? groups : 0; g < allGroups; g++) {
        short actual = b.getShort(2 * (r * allGroups + g));
        if (actual != bits) {
          throw notZeroPadding(what, name + " 0x" + hex(actual) + " of group [" + r + "][" + g + "]", name + " 0x" + hex(bits));
        }
      }
    }
  }

  private static String hex(short bf16) {
    return String.format("%04x", bf16 & 0xFFFF);
  }

  private static IllegalArgumentException notZeroPadding(String what, String found, String expected) {
    return new IllegalArgumentException(what + ": its padding holds " + found + " where torchao's zero padding of the"
        + " weight quantizes to " + expected + "; dropping that padding would lose data, so this tensor can only stay"
        + " in the tile-packed layout");
  }
}
