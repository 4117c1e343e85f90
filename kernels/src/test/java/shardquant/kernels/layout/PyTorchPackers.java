package shardquant.kernels.layout;

/**
 * Test oracles: PyTorch's packing kernels transliterated line by line, loops and names kept, so the layouts
 * can be checked on shapes the golden files do not hold (an N with a full 64-row block and a tail, many K).
 */
final class PyTorchPackers {
  private PyTorchPackers() {}

  /**
   * {@code matrix_to_m16n8k16_Bint4_layout<InnerKTiles>} (aten/src/ATen/native/cuda/int4mm.cu, NVIDIA branch)
   * over grid (kSuperTiles, nTiles) and 32 threads, on pair-packed bytes {@code in[n][k/2]}.
   */
  static int[] convertWeightToInt4packCuda(byte[] in, int n, int k, int innerKTiles) {
    int inSize1 = k / 2;
    int nTiles = (n + 7) / 8;
    int kSuperTiles = (inSize1 * 2 + innerKTiles * 16 - 1) / (innerKTiles * 16);
    int[] out = new int[nTiles * kSuperTiles * 32 * (innerKTiles / 2)];
    for (int nTile = 0; nTile < nTiles; nTile++) {
      for (int kOuterTile = 0; kOuterTile < kSuperTiles; kOuterTile++) {
        for (int t = 0; t < 32; t++) {
          for (int innerKTile = 0; innerKTile < innerKTiles; innerKTile += 2) {
            int n0 = nTile * 8 + (t / 4);
            boolean n0Valid = n0 < n;
            int[] ks = new int[4];
            int kBase0 = (kOuterTile * innerKTiles + innerKTile) * 16 / 2;
            ks[0] = kBase0 + t % 4;
            ks[1] = ks[0] + 4;
            int kBase1 = kBase0 + 16 / 2;
            ks[2] = kBase1 + t % 4;
            ks[3] = ks[2] + 4;
            int[] v = new int[4];
            for (int i = 0; i < 4; i++) {
              v[i] = (n0Valid && ks[i] < inSize1) ? in[n0 * inSize1 + ks[i]] & 0xFF : 0;
            }
            int pack = ((v[3] & 0xF) << 28) | ((v[2] & 0xF) << 24) | ((v[1] & 0xF) << 20)
                | ((v[0] & 0xF) << 16) | ((v[3] & 0xF0) << 8) | ((v[2] & 0xF0) << 4) | (v[1] & 0xF0)
                | ((v[0] & 0xF0) >> 4);
            out[((nTile * kSuperTiles + kOuterTile) * 32 + t) * (innerKTiles / 2) + innerKTile / 2] = pack;
          }
        }
      }
    }
    return out;
  }

  /**
   * {@code weight_to_int4pack_kernel} (aten/src/ATen/native/cpu/int4mm_kernel.cpp),
   * {@code CPU_CAPABILITY_AVX512} branch, {@code BLOCK_N = 64}, on int32 codes {@code weight[N][K]}.
   */
  static byte[] weightToInt4packAvx512(int[] weight, int n, int k) {
    final int blockN = 64;
    byte[] dst0 = new byte[n * k / 2];
    int nb = (n + blockN - 1) / blockN;
    for (int i = 0; i < nb; i++) {
      int nbSize = Math.min(blockN, n - i * blockN);
      int src = i * blockN * k;
      int dst = i * k * blockN / 2;
      for (int kk = 0; kk < k; kk++) {
        if (nbSize == blockN) {
          for (int d = 0; d < 16; d++) {
            int val0 = weight[src + (d + 0) * k + kk];
            int val1 = weight[src + (d + 16) * k + kk];
            int val2 = weight[src + (d + 32) * k + kk];
            int val3 = weight[src + (d + 48) * k + kk];
            dst0[dst + kk * 32 + d] = (byte) (val2 << 4 | val0);
            dst0[dst + kk * 32 + 16 + d] = (byte) (val3 << 4 | val1);
          }
        } else {
          for (int nn = 0; nn < nbSize; nn += 2) {
            int val0 = weight[src + nn * k + kk];
            int val1 = weight[src + nn * k + k + kk];
            dst0[dst + kk * nbSize / 2 + nn / 2] = (byte) (val1 << 4 | val0);
          }
        }
      }
    }
    return dst0;
  }
}
