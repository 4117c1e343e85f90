// int8-weight-only and int8-dynamic (same weights): torchao 0.19's Int8Tensor.from_hp, symmetric per-row
// int8, as the reference computes it (quant/Int8Recipe.java, AffineQuantRef.chooseQParams for SYMMETRIC
// and AffineElementwise for the INT domain): quant range -128..127, eps the input dtype's smallest normal.
//
// One warp per row, 8 rows per block of 256 threads; launch with gridDim.x = ceil((rowEnd - rowBegin) / 8).
// x: the shard's input rows [rows][cols] of dtype SQ_DTYPE_* (row indices are the shard's).
// Out, for rows [rowBegin, rowEnd): q int8 [rows][cols], scale float32 [rows], stats [rows].
// A row holding NaN or infinity writes only stats.nonFinite (> 0): the host then runs the CPU backend,
// which refuses the input with the reference's message.
#include "sq_common.cuh"

#define QUANT_MIN (-128.0f)
#define QUANT_MAX 127.0f

extern "C" __global__ void __launch_bounds__(256) int8_rowwise(const void* __restrict__ x, int dtype, int cols,
                                                            int rowBegin, int rowEnd, float eps,
                                                            signed char* __restrict__ q, float* __restrict__ scale,
                                                            SqRowStats* __restrict__ stats) {
  const int lane = threadIdx.x & 31;
  const int row = sq_warp_row(rowBegin);
  if (row >= rowEnd) {
    return;  // the whole warp
  }
  const long long base = (long long)row * cols;

  // torch.aminmax over the row (exact); count non-finite inputs.
  float mn = INFINITY;
  float mx = -INFINITY;
  int bad = 0;
  for (int c = lane; c < cols; c += 32) {
    sq_range_add(sq_load(x, base + c, dtype), &mn, &mx, &bad);
  }
  bad = sq_warp_sum(bad);
  if (bad != 0) {
    sq_row_non_finite(bad, &stats[row]);
    return;
  }
  mn = sq_warp_min(mn);
  mx = sq_warp_max(mx);

  // SYMMETRIC: scale = max(-min(min, 0), max(max, 0)) / 127.5 in float32, rounded to the input dtype,
  // then clamp(min=eps) comparing in float32 and storing eps in the input dtype; .to(float32) is exact.
  const float minNeg = sq_min(mn, 0.0f);
  const float maxPos = sq_max(mx, 0.0f);
  float s = sq_round_to(__fdiv_rn(sq_max(-minNeg, maxPos), 127.5f), dtype);
  if (s < eps) {
    s = sq_round_to(eps, dtype);
  }
  // 1.0 / scale: float32 (the scale tensor's dtype); x * inv promotes to float32.
  const float inv = __fdiv_rn(1.0f, s);
  if (lane == 0) {
    scale[row] = s;
  }

  int clipped = 0;
  for (int c = lane; c < cols; c += 32) {
    float code = rintf(__fmul_rn(sq_load(x, base + c, dtype), inv));
    clipped += !(code >= QUANT_MIN && code <= QUANT_MAX);
    float low = code < QUANT_MIN ? QUANT_MIN : code;
    q[base + c] = (signed char)(int)(QUANT_MAX < low ? QUANT_MAX : low);
  }
  clipped = sq_warp_sum(clipped);
  // Lanes 0..7 read back codes other lanes wrote: a shuffle synchronizes the lanes but does not order
  // their memory accesses; __syncwarp does.
  __syncwarp();

  // Verification: lanes 0..7 walk their stat lanes in element order; dequantized value
  // (q.to(dtype) - 0) * scale in float32, rounded to the input dtype.
  SqLane acc;
  sq_lane_init(&acc);
  if (lane < 8) {
    for (int c = lane; c < cols; c += 8) {
      float v = sq_load(x, base + c, dtype);
      float d = sq_round_to(__fmul_rn((float)q[base + c], s), dtype);
      sq_lane_add(&acc, v, d);
    }
  }
  sq_warp_finish_stats(&acc, clipped, &stats[row]);
}

SQ_EMU_REGISTER(int8_rowwise)
