// int8-weight-only and int8-dynamic (same weights): torchao 0.19's Int8Tensor.from_hp, symmetric per-row
// int8, as the reference computes it (quant/Int8Recipe.java, AffineQuantRef.chooseQParams for SYMMETRIC
// and AffineElementwise for the INT domain): quant range -128..127, eps the input dtype's smallest normal.
//
// One block per row (blockDim.x a multiple of 32, at most 256; the host takes about 16 elements a
// thread); launch with gridDim.x = rowEnd - rowBegin. The row is read from global memory once, with
// 16-byte loads where it is aligned (sq_row_load), into shared memory when cacheRow (the host's choice:
// when it fits in 48 KiB with the term tiles) or read again from global memory otherwise; range, codes
// and the verification terms come from that copy, the terms go through sq_term_sums (threads 0..7 only
// add precomputed terms, a tile behind the codes).
// Dynamic shared memory: SQ_TERM_TILE_BYTES, then (cacheRow) the row's cols * dtype size bytes,
// rounded up to 16.
// x: the shard's input rows [rows][cols] of dtype SQ_DTYPE_* (row indices are the shard's).
// Out, for rows [rowBegin, rowEnd): q int8 [rows][cols], scale float32 [rows], stats [rows].
// A row holding NaN or infinity writes only stats.nonFinite (> 0): the host then runs the CPU backend,
// which refuses the input with the reference's message.
#include "sq_common.cuh"

#define QUANT_MIN (-128.0f)
#define QUANT_MAX 127.0f

extern "C" __global__ void __launch_bounds__(256, 8) int8_rowwise(const void* __restrict__ x, int dtype, int cols,
                                                            int rowBegin, int rowEnd, float eps, int cacheRow,
                                                            signed char* __restrict__ q, float* __restrict__ scale,
                                                            SqRowStats* __restrict__ stats) {
  SQ_DYNAMIC_SHARED(unsigned char, smem);
  const int row = rowBegin + blockIdx.x;
  if (row >= rowEnd) {
    return;  // the whole block
  }
  const long long base = (long long)row * cols;
  unsigned char* cache = cacheRow ? smem + SQ_TERM_TILE_BYTES : 0;

  // torch.aminmax over the row (exact; Java's min/max do not depend on the order); count non-finite inputs.
  float mn = INFINITY;
  float mx = -INFINITY;
  int bad = 0;
  sq_row_load(x, row, cols, dtype, cache, [&](float v) { sq_range_add(v, &mn, &mx, &bad); });
  bad = sq_block_sum(bad);  // its barriers also publish the cached row
  if (bad != 0) {
    sq_block_row_non_finite(bad, &stats[row]);
    return;  // the whole block
  }
  mn = sq_block_min(mn);
  mx = sq_block_max(mx);

  // SYMMETRIC: scale = max(-min(min, 0), max(max, 0)) / 127.5 in float32, rounded to the input dtype,
  // then clamp(min=eps) comparing in float32 and storing eps in the input dtype; .to(float32) is exact.
  const float minNeg = sq_min(mn, 0.0f);
  const float maxPos = sq_max(mx, 0.0f);
  float s = sq_round_to_hw(__fdiv_rn(sq_max(-minNeg, maxPos), 127.5f), dtype);
  if (s < eps) {
    s = sq_round_to(eps, dtype);
  }
  // 1.0 / scale: float32 (the scale tensor's dtype); x * inv promotes to float32.
  const float inv = __fdiv_rn(1.0f, s);
  if (threadIdx.x == 0) {
    scale[row] = s;
  }

  // Codes, and the verification terms of (x, dequantized): (q.to(dtype) - 0) * scale in float32, rounded
  // to the input dtype.
  const void* src = cache != 0 ? (const void*)cache : (const void*)((const unsigned char*)x + base * sq_dtype_bytes(dtype));
  int clipped = 0;
  SqTermSums sums;
  sq_term_sums_init(&sums, smem);
  for (int t0 = 0; t0 < cols; t0 += SQ_TERM_TILE) {
    sq_term_sums_tile(&sums, t0, min(SQ_TERM_TILE, cols - t0), [&](int j, float* xv, float* dv) {
      float v = sq_load_hw(src, j, dtype);
      float code = rintf(__fmul_rn(v, inv));
      clipped += !(code >= QUANT_MIN && code <= QUANT_MAX);
      float low = code < QUANT_MIN ? QUANT_MIN : code;
      int qi = (int)(QUANT_MAX < low ? QUANT_MAX : low);
      q[base + j] = (signed char)qi;
      *xv = v;
      *dv = sq_round_to_hw(__fmul_rn((float)qi, s), dtype);
    });
  }
  sq_term_sums_finish(&sums, clipped, &stats[row]);
}

SQ_EMU_REGISTER(int8_rowwise)
