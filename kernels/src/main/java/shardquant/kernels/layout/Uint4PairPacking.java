package shardquant.kernels.layout;

/**
 * torchao's pair packing of uint4 codes into bytes, the input format of the CUDA
 * {@code aten._convert_weight_to_int4pack}.
 *
 * <p>Byte layout: codes q[N][K] (0..15) become uint8 p[N][K/2] with {@code p[n][j] = q[n][2j] << 4 | q[n][2j+1]}:
 * the even column in the HIGH nibble. This is torchao's
 * {@code (int_data[::, ::2] << 4 | int_data[::, 1::2]).to(torch.uint8)}
 * ({@code torchao/quantization/quantize_/workflows/int4/int4_tile_packed_to_4d_tensor.py}, {@code quant_2d}).
 * Note the opposite nibble order of {@link CpuInt4Layout}, where the first code of a pair is the LOW nibble.
 * Rows are independent, so packing a row shard gives exactly those rows of the whole.
 */
public final class Uint4PairPacking {
  private static final String LAYOUT = "uint4 pair packing";

  private Uint4PairPacking() {}

  /** Codes int[N·K] row-major, each 0..15, to bytes [N][K/2]. */
  public static byte[] pack(int[] codes, int n, int k) {
    Int4Codes.checkEvenK(LAYOUT, k);
    Int4Codes.checkCodes(LAYOUT, codes, n, k);
    byte[] packed = new byte[codes.length / 2];
    for (int j = 0; j < packed.length; j++) {
      packed[j] = (byte) (codes[2 * j] << 4 | codes[2 * j + 1]);
    }
    return packed;
  }

  /** Bytes [N][K/2] back to codes int[N·K] row-major. */
  public static int[] unpack(byte[] packed, int n, int k) {
    Int4Codes.checkEvenK(LAYOUT, k);
    Int4Codes.checkLength(LAYOUT, "packed", packed.length, Int4Codes.count(LAYOUT, n, k) / 2);
    int[] codes = new int[packed.length * 2];
    for (int j = 0; j < packed.length; j++) {
      codes[2 * j] = (packed[j] >> 4) & 0xF;
      codes[2 * j + 1] = packed[j] & 0xF;
    }
    return codes;
  }
}
