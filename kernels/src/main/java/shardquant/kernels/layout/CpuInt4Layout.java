package shardquant.kernels.layout;

/**
 * tinygemm's CPU int4 weight layout: what {@code torch.ops.aten._convert_weight_to_int4pack_for_cpu} returns
 * and {@code aten._weight_int4pack_mm_for_cpu} reads, as produced by PyTorch's AVX-512 kernel.
 *
 * <p>Byte layout, matching pytorch {@code aten/src/ATen/native/cpu/int4mm_kernel.cpp},
 * {@code weight_to_int4pack_kernel}, {@code CPU_CAPABILITY_AVX512} branch ({@code BLOCK_N = 64}): codes
 * q[N][K] (0..15) become uint8 [N][K/2], but the bytes are not row-major. Rows are cut into blocks of 64 from
 * row 0; the last block may hold 16, 32 or 48 rows. A block of R rows starting at row r0 occupies bytes
 * [r0·K/2, (r0+R)·K/2) as [K][R/2]; byte j of column k packs two codes of that column, the first in the LOW
 * nibble (the opposite of {@link Uint4PairPacking}):
 * <pre>
 *   full block (R = 64):        low = q[r0 + j][k],   high = q[r0 + j + 32][k]   (j = 0..31)
 *   last block (R = 16, 32, 48): low = q[r0 + 2j][k],  high = q[r0 + 2j + 1][k]  (j = 0..R/2-1)
 * </pre>
 * {@code _convert_weight_to_int4pack_for_cpu} requires N % 16 == 0 and K % 2 == 0, and ignores its
 * innerKTiles argument (torchao passes 1 with "TODO: remove"), so this class takes none.
 *
 * <p>The layout depends on the CPU PyTorch runs on: the same op on an AVX2 machine packs 32-row blocks
 * (low = row j, high = row j + 16), and elsewhere (no AVX) plain row pairs in blocks of
 * {@code Vectorized<float>::size() * 4} rows. Its matmul reads with the same dispatch, so bytes packed on one
 * ISA give wrong results, silently, on another. The
 * golden vectors ({@code packed_cpu}) were made on an AVX-512 x86 machine and match this class only.
 *
 * <p>Row shards: packing rows [64a, 64b) alone gives exactly those bytes of the whole tensor, and so does a
 * last shard starting at a multiple of 64 and running to row N.
 */
public final class CpuInt4Layout {
  private static final String LAYOUT = "CPU int4 layout (AVX-512)";
  private static final int BLOCK_N = 64;

  private CpuInt4Layout() {}

  /** Codes int[N·K] row-major, each 0..15, to bytes [N][K/2] in the blocked order above. */
  public static byte[] pack(int[] codes, int n, int k) {
    checkShape(n, k);
    Int4Codes.checkCodes(LAYOUT, codes, n, k);
    byte[] packed = new byte[codes.length / 2];
    forEachPair(n, k, (b, low, high) -> packed[b] = (byte) (codes[low] | codes[high] << 4));
    return packed;
  }

  /** Bytes [N][K/2] in the blocked order above back to codes int[N·K] row-major. */
  public static int[] unpack(byte[] packed, int n, int k) {
    checkShape(n, k);
    int[] codes = new int[Int4Codes.count(LAYOUT, n, k)];
    Int4Codes.checkLength(LAYOUT, "packed", packed.length, codes.length / 2);
    forEachPair(n, k, (b, low, high) -> {
      codes[low] = packed[b] & 0xF;
      codes[high] = (packed[b] >> 4) & 0xF;
    });
    return codes;
  }

  /** Visits every packed byte in order with the row-major indices of its low and high codes. */
  private static void forEachPair(int n, int k, PairVisitor visitor) {
    int b = 0;
    for (int r0 = 0; r0 < n; r0 += BLOCK_N) {
      int rows = Math.min(BLOCK_N, n - r0);
      boolean full = rows == BLOCK_N;
      for (int col = 0; col < k; col++) {
        for (int j = 0; j < rows / 2; j++, b++) {
          int low = r0 + (full ? j : 2 * j);
          int high = full ? low + BLOCK_N / 2 : low + 1;
          visitor.visit(b, low * k + col, high * k + col);
        }
      }
    }
  }

  @FunctionalInterface
  private interface PairVisitor {
    void visit(int packedIndex, int lowCode, int highCode);
  }

  private static void checkShape(int n, int k) {
    Int4Codes.count(LAYOUT, n, k);
    if (n % 16 != 0) {
      throw new IllegalArgumentException(LAYOUT + " needs N % 16 == 0 (PyTorch's check), got N = " + n);
    }
    Int4Codes.checkEvenK(LAYOUT, k);
  }
}
