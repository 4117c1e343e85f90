package shardquant.kernels.layout;

/**
 * tinygemm's tensor-core tiled int4 weight layout: what {@code torch.ops.aten._convert_weight_to_int4pack}
 * returns on CUDA and what {@code aten._weight_int4pack_mm} reads.
 *
 * <p>Byte layout, matching pytorch {@code aten/src/ATen/native/cuda/int4mm.cu},
 * {@code _convert_weight_to_int4pack_cuda} and the NVIDIA branch ({@code kNTileSize = 8}) of
 * {@code matrix_to_m16n8k16_Bint4_layout}: codes q[N][K] (0..15) become int32
 * {@code out[N/8][K/(16·ikt)][32][ikt/2]}, ikt = innerKTiles. Word {@code out[nt][kt][t][p]} holds the
 * m16n8k16 B-fragment values of warp lane t for the k-tiles 2p and 2p+1 of super-tile kt. With row
 * {@code r = 8·nt + t/4} and column {@code c = 16·(ikt·kt + 2p) + 2·(t % 4)}:
 * <pre>
 *   bits  4j ..  4j+3  (j = 0..3):  q[r][c + 8j]        the even column of each pair
 *   bits 16+4j..16+4j+3 (j = 0..3):  q[r][c + 8j + 1]    the odd column
 * </pre>
 * This is the kernel's {@code v[3]L v[2]L v[1]L v[0]L v[3]H v[2]H v[1]H v[0]H} (high nibble to low) read from
 * the {@link Uint4PairPacking pair-packed} bytes {@code v[j] = q[r][c+8j] << 4 | q[r][c+8j+1]}; j = 0, 1 lie in
 * k-tile 2p and j = 2, 3 in k-tile 2p+1. The kernel zero-fills rows past N; this class requires
 * N % 8 == 0 instead, as torchao pads N, so unpacking is exact. K % (16·ikt) == 0 is the kernel's own check.
 *
 * <p>torchao's {@code Int4TilePackedTo4dTensor.from_hp}
 * ({@code torchao/quantization/quantize_/workflows/int4/int4_tile_packed_to_4d_tensor.py}) fixes
 * inner_k_tiles = 8, zero-pads the bf16 weight to K a multiple of 1024 and N a multiple of 8 (16 on ROCm)
 * before quantizing, pair-packs the codes and calls this op: its {@code qdata} is int32 [N/8][K/128][32][4].
 *
 * <p>The outermost dimension is the 8-row tile, so packing rows [8a, 8b) alone gives exactly
 * {@code out[a..b)} of the whole tensor: row shards aligned to 8 rows concatenate.
 */
public final class TensorCoreTiledInt4Layout {
  private static final String LAYOUT = "tensor-core tiled int4 layout";
  private static final int N_TILE = 8;
  private static final int K_TILE = 16;
  private static final int LANES = 32;

  private TensorCoreTiledInt4Layout() {}

  /** The int32 output shape {@code [N/8][K/(16·innerKTiles)][32][innerKTiles/2]}. */
  public static long[] packedShape(int n, int k, int innerKTiles) {
    checkShape(n, k, innerKTiles);
    return new long[] {n / N_TILE, k / (K_TILE * innerKTiles), LANES, innerKTiles / 2};
  }

  /** Codes int[N·K] row-major, each 0..15, to the int32 words of {@link #packedShape}, row-major. */
  public static int[] pack(int[] codes, int n, int k, int innerKTiles) {
    checkShape(n, k, innerKTiles);
    Int4Codes.checkCodes(LAYOUT, codes, n, k);
    int[] words = new int[codes.length / 8];
    for (int w = 0; w < words.length; w++) {
      int first = firstCode(w, k, innerKTiles);
      int word = 0;
      for (int j = 0; j < 4; j++) {
        word |= codes[first + 8 * j] << (4 * j) | codes[first + 8 * j + 1] << (16 + 4 * j);
      }
      words[w] = word;
    }
    return words;
  }

  /** The int32 words of {@link #packedShape}, row-major, back to codes int[N·K] row-major. */
  public static int[] unpack(int[] words, int n, int k, int innerKTiles) {
    checkShape(n, k, innerKTiles);
    int[] codes = new int[Int4Codes.count(LAYOUT, n, k)];
    Int4Codes.checkLength(LAYOUT, "packed words", words.length, codes.length / 8);
    for (int w = 0; w < words.length; w++) {
      int first = firstCode(w, k, innerKTiles);
      for (int j = 0; j < 4; j++) {
        codes[first + 8 * j] = (words[w] >>> (4 * j)) & 0xF;
        codes[first + 8 * j + 1] = (words[w] >>> (16 + 4 * j)) & 0xF;
      }
    }
    return codes;
  }

  /** Row-major index of q[r][c], the code in the lowest nibble of word w (see the class comment). */
  private static int firstCode(int w, int k, int innerKTiles) {
    int pairs = innerKTiles / 2;
    int p = w % pairs;
    int t = (w / pairs) % LANES;
    int superTiles = k / (K_TILE * innerKTiles);
    int kt = (w / (pairs * LANES)) % superTiles;
    int nt = w / (pairs * LANES * superTiles);
    int r = N_TILE * nt + t / 4;
    int c = K_TILE * (innerKTiles * kt + 2 * p) + 2 * (t % 4);
    return r * k + c;
  }

  private static void checkShape(int n, int k, int innerKTiles) {
    if (innerKTiles != 2 && innerKTiles != 4 && innerKTiles != 8) {
      throw new IllegalArgumentException(LAYOUT + " needs innerKTiles 2, 4 or 8, got " + innerKTiles);
    }
    Int4Codes.count(LAYOUT, n, k);
    if (n % N_TILE != 0) {
      throw new IllegalArgumentException(LAYOUT + " needs N % 8 == 0 (pad N as torchao does), got N = " + n);
    }
    if (k % (K_TILE * innerKTiles) != 0) {
      throw new IllegalArgumentException(LAYOUT + " with innerKTiles " + innerKTiles + " needs K % "
          + K_TILE * innerKTiles + " == 0, got K = " + k);
    }
  }
}
