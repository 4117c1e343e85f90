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
// Launch (rowThreads T = 32, 64 or 128: the warps working on one row; the host takes T = 32, 64, 128 for
// k <= 256, <= 512, above, and 256 threads per block, B = 256 / T rows per block; dynamic shared memory
// i4_shared_bytes(B, T) = B * 17 * 8T bytes, at most 34,816):
//  - int4_tile_packed: block i takes rows rowBegin + B*i .. + B-1, gridDim.x = ceil((rowEnd - rowBegin) / B),
//    rowBegin a multiple of 8 (one tile). rowEnd is the chunk's end rounded up to 8: rows past realRows
//    (and columns past cols) are the zero padding, quantized like any other element.
//  - int4_cpu: a block takes B rows whose codes share B/2 consecutive bytes of each column in the CPU
//    layout: of the 64-row block at rowBegin + 64 * (i / (64 / B)), bytes j0 .. j0 + B/2 - 1, j0 = B/2 *
//    (i % (64 / B)), i.e. rows j and j + 32 (a block of 64 rows) or 2j and 2j + 1 (a shorter last block);
//    gridDim.x = 64 / B * ceil((rowEnd - rowBegin) / 64), rowBegin a multiple of 64. A block past a short
//    row block's end returns at once.
// Rows are independent; qparams depend on the group alone.
//
// Work layout: a row's T threads walk K in slices of 8T columns; thread t loads columns 8t .. 8t+7 of the
// slice with one 16-byte load (scalar loads where the row is not 16-byte aligned or past cols), so a warp
// covers 256 consecutive columns, a multiple of every group size (32, 64, 128, 256): a group is the
// g / 8 lanes holding it, its min/max a shuffle reduction over them. Each thread computes its 8 codes and
// their dequantized values, stores the codes and the verification terms (sq_common.cuh, "precomputed-term
// row sums") in shared memory; after a barrier the row's threads 0..7 add the terms on their chains while
// all threads pack the slice's codes into qdata: for the tile layout a row's 128 columns are 16
// consecutive int32 of its tile, word w = 4 tt + p holding columns 32p + 2tt + 8j (bits 4j) and + 1 (bits
// 16 + 4j), so thread t writes word t of the row's slice; for the CPU layout thread j of the block
// assembles column c's B/2 bytes (low nibble one row, high nibble its partner) and stores them at once.
// A second barrier frees the shared slice for the next one. scale_and_zero: a group's first lane writes its
// (scale, zero) pair as one 32-bit word.
//
// Out (shard rows): qdata, scale_and_zero, stats [realRows] (real rows, real columns; clipped counts the
// padded columns too, as the reference does), inputBad [realRows]: the row's NaN/infinity count. A row
// holding one makes the host return null (the CPU backend then refuses it with the reference's message);
// non-finite dequantized values of finite input (a group of ±bf16 max: max - min overflows) are legitimate
// and go into stats.nonFinite as in the reference.
#include "sq_common.cuh"

#define I4_LAYOUT_TILE 0
#define I4_LAYOUT_CPU 1

// The row's partial counts of one warp, combined after the last slice.
struct I4WarpPart {
  int clipped;
  int bad;
  int nonFinite;
  float maxErr;
};

template <int LAYOUT>
SQ_DEVICE void i4_quantize(const void* __restrict__ x, int cols, int realRows, int n, int k, int group,
                           int rowBegin, int rowEnd, float eps, int rowThreads, unsigned int* __restrict__ qdata,
                           unsigned int* __restrict__ scaleAndZero, SqRowStats* __restrict__ stats,
                           int* __restrict__ inputBad) {
  SQ_DYNAMIC_SHARED(unsigned char, smem);
  const int T = rowThreads;
  const int slice = 8 * T;                // columns per slice
  const int rowsPerBlock = blockDim.x / T;  // B
  const int rg = threadIdx.x / T;          // the thread's row within the block
  const int t = threadIdx.x % T;
  const int lane = threadIdx.x & 31;
  const int groupLanes = group / 8;
  // Shared: per row of the block, signal and error terms [slice] doubles each, then the codes [B][slice].
  double* signal = reinterpret_cast<double*>(smem) + (long long)rg * 2 * slice;
  double* error = signal + slice;
  unsigned char* codeBase = smem + (long long)rowsPerBlock * 16 * slice;
  unsigned char* codes = codeBase + (long long)rg * slice;

  int row;
  int block0 = 0;  // CPU layout: the 64-row block's first row and size
  int blockRows = 0;
  int j0 = 0;      // CPU layout: the block's first byte of each column
  const int q = rowsPerBlock / 2;
  if (LAYOUT == I4_LAYOUT_TILE) {
    row = rowBegin + blockIdx.x * rowsPerBlock + rg;
  } else {
    const int perRowBlock = 64 / rowsPerBlock;
    block0 = rowBegin + 64 * (blockIdx.x / perRowBlock);
    blockRows = min(64, rowEnd - block0);
    j0 = q * (blockIdx.x % perRowBlock);
    if (j0 >= blockRows / 2) {
      return;  // the whole block: past a short row block's last byte
    }
    const int j = j0 + rg / 2;
    row = blockRows == 64 ? block0 + j + 32 * (rg & 1) : block0 + 2 * j + (rg & 1);
  }
  const bool inBlock = row < rowEnd;
  const bool real = inBlock && row < realRows;
  const bool vec = cols % 8 == 0 && (reinterpret_cast<unsigned long long>(x) & 15) == 0;
  const long long base = (long long)row * cols;

  double sig = 0.0;
  double err = 0.0;
  float maxErr = 0.0f;
  int nonFinite = 0;
  int clipped = 0;
  int bad = 0;

  for (int s0 = 0; s0 < k; s0 += slice) {
    const int c0 = s0 + 8 * t;  // the thread's first column
    const bool active = c0 < k;  // k is a multiple of every group, so of 8
    float v[8];
    sq_rt_load8(x, base, c0, cols, real && active, vec, SQ_DTYPE_BF16, v);
    float mn = INFINITY;
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < 8; i++) {
      bad += !sq_finite(v[i]);
      mn = sq_min(mn, v[i]);
      mx = sq_max(mx, v[i]);
    }
    mn = sq_group_min(mn, groupLanes);
    mx = sq_group_max(mx, groupLanes);
    // _choose_qparams_affine_tinygemm: scale = clamp((max - min) / 15, eps), zero = min + scale * 8,
    // each op rounded to bf16; clamp_min compares in float32 and stores eps as bf16.
    float s = sq_round_to_hw(__fdiv_rn(sq_round_to_hw(__fsub_rn(mx, mn), SQ_DTYPE_BF16), 15.0f), SQ_DTYPE_BF16);
    if (s < eps) {
      s = sq_round_to_hw(eps, SQ_DTYPE_BF16);
    }
    const float scaleMid = sq_round_to_hw(__fmul_rn(s, 8.0f), SQ_DTYPE_BF16);
    const float zero = sq_round_to_hw(__fadd_rn(mn, scaleMid), SQ_DTYPE_BF16);
    // _quantize_affine_tinygemm: min_val = zero - scale * mid; code = clamp(round((x - min_val) / scale), 0, 15)
    const float minVal = sq_round_to_hw(__fsub_rn(zero, scaleMid), SQ_DTYPE_BF16);
    if (inBlock && active && c0 % group == 0) {
      scaleAndZero[(long long)(c0 / group) * n + row] =
          (unsigned int)sq_float_to_bf16(s) | ((unsigned int)sq_float_to_bf16(zero) << 16);
    }
    unsigned int packed0 = 0;  // the 8 codes, a byte each
    unsigned int packed1 = 0;
#pragma unroll
    for (int i = 0; i < 8; i++) {
      const float code = rintf(sq_round_to_hw(__fdiv_rn(sq_round_to_hw(__fsub_rn(v[i], minVal), SQ_DTYPE_BF16), s), SQ_DTYPE_BF16));
      clipped += active && !(code >= 0.0f && code <= 15.0f);
      const float low = code < 0.0f ? 0.0f : code;
      const float high = 15.0f < low ? 15.0f : low;
      const int qv = high == high ? (int)high : 0;  // NaN (the group's range overflowed): Java's (int) gives 0
      if (i < 4) {
        packed0 |= (unsigned int)qv << (8 * i);
      } else {
        packed1 |= (unsigned int)qv << (8 * (i - 4));
      }
      // _dequantize_affine_tinygemm: ((q - 8) * scale) + zero, in bf16, for the real columns' sums
      if (real && c0 + i < cols) {
        float d = sq_round_to_hw(__fmul_rn((float)(qv - 8), s), SQ_DTYPE_BF16);
        d = sq_round_to_hw(__fadd_rn(d, zero), SQ_DTYPE_BF16);
        sq_pair_terms(v[i], d, &signal[8 * t + i], &error[8 * t + i], &maxErr, &nonFinite);
      }
    }
    reinterpret_cast<uint2*>(codes)[t] = uint2{packed0, packed1};
    __syncthreads();

    if (real && t < 8) {
      sq_rt_chain(signal, error, min(slice, cols - s0), t, &sig, &err);
    }
    if (LAYOUT == I4_LAYOUT_TILE) {
      // Word t of the row's slice: super-tile (s0 + 128 (t / 16)) / 128, word w = t % 16 of the row there.
      const int w = t & 15;
      const int tt = w >> 2;
      const int p = w & 3;
      const int c = 128 * (t >> 4) + 32 * p + 2 * tt;  // column within the slice
      if (inBlock && s0 + c < k) {
        unsigned int word = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) {
          word |= ((unsigned int)codes[c + 8 * j] << (4 * j)) | ((unsigned int)codes[c + 8 * j + 1] << (16 + 4 * j));
        }
        const long long nt = row >> 3;
        qdata[(nt * (k / 128) + (s0 + c) / 128) * 128 + 16 * (row & 7) + w] = word;
      }
    } else {
      // Column c's bytes j0 .. j0 + q - 1 of the row block: byte j0 + m = codes of rows 2m (low nibble) and
      // 2m + 1 (high) of the block.
      const int half = blockRows / 2;
      unsigned char* out = reinterpret_cast<unsigned char*>(qdata) + (long long)block0 * k / 2 + j0;
      for (int c = threadIdx.x; c < slice && s0 + c < k; c += blockDim.x) {
        unsigned int bytes = 0;
        for (int m = 0; m < q; m++) {
          bytes |= (unsigned int)(codeBase[2 * m * slice + c] | (codeBase[(2 * m + 1) * slice + c] << 4)) << (8 * m);
        }
        unsigned char* at = out + (long long)(s0 + c) * half;
        if (q == 4) {
          *reinterpret_cast<unsigned int*>(at) = bytes;
        } else if (q == 2) {
          *reinterpret_cast<unsigned short*>(at) = (unsigned short)bytes;
        } else {
          *at = (unsigned char)bytes;
        }
      }
    }
    __syncthreads();
  }

  // The row's counts: per warp by shuffles, then across the row's warps through shared memory (the term
  // slices are free now).
  I4WarpPart part;
  part.clipped = sq_warp_sum(clipped);
  part.bad = sq_warp_sum(bad);
  part.nonFinite = sq_warp_sum(nonFinite);
  part.maxErr = sq_warp_max(maxErr);
  I4WarpPart* parts = reinterpret_cast<I4WarpPart*>(smem);
  if (lane == 0) {
    parts[threadIdx.x >> 5] = part;
  }
  double rowSignal = 0.0;
  double rowError = 0.0;
  sq_rt_combine(sig, err, 0, &rowSignal, &rowError);  // lanes 0..7 of the row's first warp hold the chains
  __syncthreads();
  if (t == 0 && real) {
    SqRowStats out = {rowSignal, rowError, 0.0f, 0, 0, 0};
    int rowBad = 0;
    for (int w = 0; w < T / 32; w++) {
      const I4WarpPart o = parts[(threadIdx.x >> 5) + w];
      out.clipped += o.clipped;
      rowBad += o.bad;
      out.nonFinite += o.nonFinite;
      out.maxErr = fmaxf(out.maxErr, o.maxErr);
    }
    stats[row] = out;
    inputBad[row] = rowBad;
  }
}

// x: bf16 rows [realRows][cols]; n = rows rounded up to 8, k = cols rounded up to 1024; qdata int32
// [n/8][k/128][32][4]; scaleAndZero bf16 pairs [k/group][n]; rowEnd: the chunk's end rounded up to 8.
extern "C" __global__ void __launch_bounds__(256) int4_tile_packed(
    const void* __restrict__ x, int cols, int realRows, int n, int k, int group, int rowBegin, int rowEnd, float eps,
    int rowThreads, unsigned int* __restrict__ qdata, unsigned int* __restrict__ scaleAndZero,
    SqRowStats* __restrict__ stats, int* __restrict__ inputBad) {
  i4_quantize<I4_LAYOUT_TILE>(x, cols, realRows, n, k, group, rowBegin, rowEnd, eps, rowThreads, qdata,
                              scaleAndZero, stats, inputBad);
}

// x: bf16 rows [n][k] (n % 16 == 0, k % group == 0, no padding); qdata uint8 [n][k/2] as 32-bit words;
// scaleAndZero bf16 pairs [k/group][n]; rowBegin a multiple of 64.
extern "C" __global__ void __launch_bounds__(256) int4_cpu(
    const void* __restrict__ x, int n, int k, int group, int rowBegin, int rowEnd, float eps, int rowThreads,
    unsigned int* __restrict__ qdata, unsigned int* __restrict__ scaleAndZero, SqRowStats* __restrict__ stats,
    int* __restrict__ inputBad) {
  i4_quantize<I4_LAYOUT_CPU>(x, k, n, n, k, group, rowBegin, rowEnd, eps, rowThreads, qdata, scaleAndZero, stats,
                             inputBad);
}

SQ_EMU_REGISTER(int4_tile_packed)
SQ_EMU_REGISTER(int4_cpu)
