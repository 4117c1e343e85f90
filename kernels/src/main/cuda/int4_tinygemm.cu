// int4-tile-packed and int4-cpu: torchao 0.19's tinygemm asymmetric uint4 weight quantization
// (_choose_qparams_affine_tinygemm, _quantize_affine_tinygemm, _dequantize_affine_tinygemm: FLOAT zero
// point domain, bf16 scale and zero, groups of (1, g)) followed by the packing of
//  - int4_tile_packed: Int4TilePackedTo4dTensor.from_hp, aten._convert_weight_to_int4pack (CUDA, inner_k_tiles 8):
//    int32 qdata [Npad/8][Kpad/128][32][4], the weight zero-padded to N % 8 == 0 and K % 1024 == 0;
//  - int4_cpu: aten._convert_weight_to_int4pack_for_cpu (AVX-512): uint8 qdata [N][K/2] in 64-row blocks;
// and both write tinygemm's scale_and_zero bf16 [K/g][N][2] (pack_tinygemm_scales_and_zeros).
// Reference: quant/TinygemmInt4.java (AffineQuantRef / AffineElementwise, FLOAT domain), quant/Int4TilePackedRecipe.java,
// quant/Int4CpuRecipe.java, layout/TensorCoreTiledInt4Layout.java, layout/CpuInt4Layout.java,
// layout/TinygemmScaleZero.java (byte layouts documented there); backend/simd/SimdInt4.java does the same fused pass.
// Input is bf16 only (the recipes refuse other dtypes), so every intermediate rounds to bf16.
//
// Launch: 256 threads (8 warps) per block of 64 rows; gridDim.x = ceil((rowEnd - rowBegin) / 64), rowBegin a
// multiple of 64 (int4_cpu: the CPU layout's row blocks) or of 8 (int4_tile_packed: one tile). For the tile
// layout rowEnd is the chunk's end rounded up to 8: rows past realRows (and columns past cols) are the
// zero padding, quantized like any other element. Rows are independent; qparams depend on the group alone.
//
// Work layout: warp w owns rows 8w..8w+7 of the block and takes them four at a time; lane L works on row
// slot L / 8 of the four and columns c ≡ L % 8 (mod 8), in order. That is exactly QuantStats' stat lane
// L % 8 of that row, so each lane adds its own elements' verification sums in element order in registers
// (no transposition), and a group's min/max is a reduction over the slot's 8 lanes. The block walks K in
// steps of 256 columns (a multiple of every group size: 32, 64, 128, 256; int4_cpu's last step may be
// shorter, still whole groups): the step's codes of all 64 rows go to shared memory, then after a barrier
// all 256 threads assemble the step's packed output from them, each writing consecutive 32-bit words:
// for the tile layout the step is two 128-column super-tiles, i.e. 256 consecutive int32 per 8-row tile;
// for the CPU layout the step's bytes of the row block are one contiguous range ([K][R/2] order).
// scale_and_zero: the slot's first lane writes its group's (scale, zero) pair as one 32-bit word.
//
// Out (shard rows): qdata, scale_and_zero, stats [realRows] (real rows, real columns; clipped counts the
// padded columns too, as the reference does), inputBad [realRows]: the row's NaN/infinity count. A row
// holding one makes the host return null (the CPU backend then refuses it with the reference's message);
// non-finite dequantized values of finite input (a group of ±bf16 max: max - min overflows) are legitimate
// and go into stats.nonFinite as in the reference.
#include "sq_common.cuh"

#define I4_THREADS 256
#define I4_ROWS 64        // rows per block: one CPU-layout row block, eight tiles
#define I4_STEP 256       // columns per step
#define I4_MAX_PER_LANE 32  // a group's elements per lane: 256 / 8
#define I4_LAYOUT_TILE 0
#define I4_LAYOUT_CPU 1

// A row slot is 8 lanes (8s..8s+7): its reductions are sq_group_*(v, 8).

// Finishes the stat blocks of the warp's four row slots (slot s in lanes 8s..8s+7); every lane calls it.
// rows[s] < 0: no stat block (padding or past the block).
SQ_DEVICE void i4_finish_rows(const SqLane* mine, int clipped, int bad, const int* rows,
                              SqRowStats* __restrict__ stats, int* __restrict__ inputBad) {
  const int lane = threadIdx.x & 31;
  clipped = sq_group_sum(clipped, 8);
  bad = sq_group_sum(bad, 8);
  for (int s = 0; s < 4; s++) {
    double signal[8];
    double error[8];
    float maxErr = 0.0f;
    int nonFinite = 0;
    for (int l = 0; l < 8; l++) {
      signal[l] = __shfl_sync(0xffffffffu, mine->signal, 8 * s + l);
      error[l] = __shfl_sync(0xffffffffu, mine->error, 8 * s + l);
      maxErr = fmaxf(maxErr, __shfl_sync(0xffffffffu, mine->maxErr, 8 * s + l));
      nonFinite += __shfl_sync(0xffffffffu, mine->nonFinite, 8 * s + l);
    }
    if (lane == 8 * s && rows[s] >= 0) {
      SqRowStats out;
      out.signal = sq_combine_lanes(signal);
      out.error = sq_combine_lanes(error);
      out.maxErr = maxErr;
      out.clipped = clipped;
      out.nonFinite = nonFinite;
      out.pad = 0;
      stats[rows[s]] = out;
      inputBad[rows[s]] = bad;
    }
  }
}

template <int LAYOUT>
SQ_DEVICE void i4_quantize(const void* __restrict__ x, int cols, int realRows, int n, int k, int group,
                           int rowBegin, int rowEnd, float eps, unsigned int* __restrict__ qdata,
                           unsigned int* __restrict__ scaleAndZero, SqRowStats* __restrict__ stats,
                           int* __restrict__ inputBad) {
  __shared__ unsigned char codes[I4_ROWS][I4_STEP];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int slot = lane >> 3;  // row slot of the batch of four
  const int sub = lane & 7;    // stat lane: columns sub, sub + 8, ...
  const int block0 = rowBegin + blockIdx.x * I4_ROWS;
  const int blockRows = min(I4_ROWS, rowEnd - block0);  // CPU: 16, 32, 48 or 64
  const int groupsPerRow = k / group;
  const int perLane = group / 8;

  // The warp's two batches of four rows; each lane carries the stat lane of its slot's row in each.
  SqLane acc[2];
  int clipped[2] = {0, 0};
  int bad[2] = {0, 0};
  sq_lane_init(&acc[0]);
  sq_lane_init(&acc[1]);

  for (int c0 = 0; c0 < k; c0 += I4_STEP) {
    const int stepCols = min(I4_STEP, k - c0);
    for (int b = 0; b < 2; b++) {
      const int local = 8 * warp + 4 * b + slot;  // row within the block
      const int row = block0 + local;
      const bool inBlock = local < blockRows;
      const bool real = inBlock && row < realRows;
      const long long base = (long long)row * cols;
      for (int g0 = 0; g0 < stepCols; g0 += group) {
        // The lane's elements of the group: columns c0 + g0 + sub + 8m, zero past the real rows and columns.
        float v[I4_MAX_PER_LANE];
        float mn = INFINITY;
        float mx = -INFINITY;
#pragma unroll
        for (int m = 0; m < I4_MAX_PER_LANE; m++) {
          if (m < perLane) {
            const int c = c0 + g0 + sub + 8 * m;
            float e = (real && c < cols) ? sq_load(x, base + c, SQ_DTYPE_BF16) : 0.0f;
            bad[b] += !sq_finite(e);
            v[m] = e;
            mn = sq_min(mn, e);
            mx = sq_max(mx, e);
          }
        }
        mn = sq_group_min(mn, 8);
        mx = sq_group_max(mx, 8);
        // _choose_qparams_affine_tinygemm: scale = clamp((max - min) / 15, eps), zero = min + scale * 8,
        // each op rounded to bf16; clamp_min compares in float32 and stores eps as bf16.
        float s = sq_round_bf16(__fdiv_rn(sq_round_bf16(__fsub_rn(mx, mn)), 15.0f));
        if (s < eps) {
          s = sq_round_bf16(eps);
        }
        const float scaleMid = sq_round_bf16(__fmul_rn(s, 8.0f));
        const float zero = sq_round_bf16(__fadd_rn(mn, scaleMid));
        // _quantize_affine_tinygemm: min_val = zero - scale * mid; code = clamp(round((x - min_val) / scale), 0, 15)
        const float minVal = sq_round_bf16(__fsub_rn(zero, scaleMid));
        const int gi = (c0 + g0) / group;
        if (inBlock && sub == 0) {
          scaleAndZero[(long long)gi * n + row] =
              (unsigned int)sq_float_to_bf16(s) | ((unsigned int)sq_float_to_bf16(zero) << 16);
        }
#pragma unroll
        for (int m = 0; m < I4_MAX_PER_LANE; m++) {
          if (m < perLane) {
            const int cl = g0 + sub + 8 * m;  // column within the step
            const float code = rintf(sq_round_bf16(__fdiv_rn(sq_round_bf16(__fsub_rn(v[m], minVal)), s)));
            clipped[b] += !(code >= 0.0f && code <= 15.0f);
            const float low = code < 0.0f ? 0.0f : code;
            const float high = 15.0f < low ? 15.0f : low;
            const int q = high == high ? (int)high : 0;  // NaN (the group's range overflowed): Java's (int) gives 0
            if (inBlock) {
              codes[local][cl] = (unsigned char)q;
            }
            // _dequantize_affine_tinygemm: ((q - 8) * scale) + zero, in bf16, for the real columns' sums
            if (real && c0 + cl < cols) {
              float d = sq_round_bf16(__fmul_rn((float)(q - 8), s));
              d = sq_round_bf16(__fadd_rn(d, zero));
              sq_lane_add(&acc[b], v[m], d);
            }
          }
        }
      }
    }
    __syncthreads();

    // Pack the step's codes of the block's rows into qdata, 32-bit words from consecutive threads.
    if (LAYOUT == I4_LAYOUT_TILE) {
      // Tile nt, super-tiles kt0 = c0 / 128 and kt0 + 1: words [(nt * K/128 + kt0) * 128, + 256), word i being
      // (kt0 + i / 128, lane t = (i % 128) / 4, p = i % 4): row 8nt + t / 4, columns c = 128 (i / 128) + 32p + 2 (t % 4)
      // + 8j at bits 4j and c + 1 + 8j at bits 16 + 4j (TensorCoreTiledInt4Layout).
      const int i = threadIdx.x;
      const int t = (i & 127) >> 2;
      const int c = 128 * (i >> 7) + 32 * (i & 3) + 2 * (t & 3);
      const int superTiles = k / 128;
      for (int tile = 0; tile < blockRows / 8; tile++) {
        const unsigned char* r = codes[8 * tile + (t >> 2)];
        unsigned int word = 0;
        for (int j = 0; j < 4; j++) {
          word |= ((unsigned int)r[c + 8 * j] << (4 * j)) | ((unsigned int)r[c + 8 * j + 1] << (16 + 4 * j));
        }
        const long long nt = (block0 >> 3) + tile;
        qdata[(nt * superTiles + c0 / 128) * 128 + i] = word;
      }
    } else {
      // Row block R = blockRows at block0: bytes [block0 K/2 + c0 R/2, + stepCols R/2) in [column][R/2] order;
      // byte j of a column: low nibble row j, high row j + 32 (R = 64), else rows 2j and 2j + 1 (CpuInt4Layout).
      const int half = blockRows / 2;  // 8, 16, 24 or 32: a column's bytes are whole words
      const bool full = blockRows == I4_ROWS;
      const int words = stepCols * half / 4;
      const long long first = ((long long)block0 * k / 2 + (long long)c0 * half) / 4;
      for (int w = threadIdx.x; w < words; w += I4_THREADS) {
        const int c = 4 * w / half;
        const int j0 = 4 * w % half;
        unsigned int word = 0;
        for (int e = 0; e < 4; e++) {
          const int j = j0 + e;
          const int lowRow = full ? j : 2 * j;
          const int highRow = full ? j + 32 : 2 * j + 1;
          word |= (unsigned int)(codes[lowRow][c] | (codes[highRow][c] << 4)) << (8 * e);
        }
        qdata[first + w] = word;
      }
    }
    __syncthreads();
  }

  for (int b = 0; b < 2; b++) {
    int rows[4];
    for (int s = 0; s < 4; s++) {
      const int local = 8 * warp + 4 * b + s;
      const int row = block0 + local;
      rows[s] = local < blockRows && row < realRows ? row : -1;
    }
    i4_finish_rows(&acc[b], clipped[b], bad[b], rows, stats, inputBad);
  }
}

// x: bf16 rows [realRows][cols]; n = rows rounded up to 8, k = cols rounded up to 1024; qdata int32
// [n/8][k/128][32][4]; scaleAndZero bf16 pairs [k/group][n]; rowEnd: the chunk's end rounded up to 8.
extern "C" __global__ void __launch_bounds__(I4_THREADS) int4_tile_packed(
    const void* __restrict__ x, int cols, int realRows, int n, int k, int group, int rowBegin, int rowEnd, float eps,
    unsigned int* __restrict__ qdata, unsigned int* __restrict__ scaleAndZero, SqRowStats* __restrict__ stats,
    int* __restrict__ inputBad) {
  i4_quantize<I4_LAYOUT_TILE>(x, cols, realRows, n, k, group, rowBegin, rowEnd, eps, qdata, scaleAndZero, stats,
                              inputBad);
}

// x: bf16 rows [n][k] (n % 16 == 0, k % group == 0, no padding); qdata uint8 [n][k/2] as 32-bit words;
// scaleAndZero bf16 pairs [k/group][n]; rowBegin a multiple of 64.
extern "C" __global__ void __launch_bounds__(I4_THREADS) int4_cpu(
    const void* __restrict__ x, int n, int k, int group, int rowBegin, int rowEnd, float eps,
    unsigned int* __restrict__ qdata, unsigned int* __restrict__ scaleAndZero, SqRowStats* __restrict__ stats,
    int* __restrict__ inputBad) {
  i4_quantize<I4_LAYOUT_CPU>(x, k, n, n, k, group, rowBegin, rowEnd, eps, qdata, scaleAndZero, stats, inputBad);
}

SQ_EMU_REGISTER(int4_tile_packed)
SQ_EMU_REGISTER(int4_cpu)
