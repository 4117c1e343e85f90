// 8da4w and intx-weight-only: torchao 0.19's IntxUnpackedToInt8Tensor.from_hp (choose_qparams_affine,
// quantize_affine, dequantize_affine with block (1, group), the INT zero point domain, int8-stored
// codes), as the reference computes it (quant/IntxRecipe.java, AffineQuantRef.chooseQParams for the
// mapping, AffineElementwise for the INT domain). The recipes use MappingType.SYMMETRIC with codes
// -2^(bits-1) .. 2^(bits-1) - 1 (zero point 0), scale in the input dtype and an int8 zero point; the
// kernel also takes SYMMETRIC_NO_CLIPPING_ERR and ASYMMETRIC and any group dividing the row (a group
// may be the whole row), for the same spec shape (scale dtype = input dtype, int8 codes and zero point).
//
// Per group of block (1, g), every op one float32 op rounded to the input dtype d where PyTorch stores
// a d tensor (scale dtype = d, so x * (1 / scale) and the dequantize multiply stay in d):
//   min, max over the group; minNeg = min(min, 0), maxPos = max(max, 0)
//   SYMMETRIC:   s = d(max(-minNeg, maxPos) / halfRange),             z = symmetricZero (0 for the recipes)
//   NO_CLIP_ERR: s = max(d(minNeg / qmin), d(maxPos / qmax)),         z = symmetricZero
//   ASYMMETRIC:  s = d(d(maxPos - minNeg) / range),  z = clamp(d(qmin - rint(d(minNeg / s))), qmin, qmax)
//   s below eps becomes d(eps) (torch.clamp(min=eps) compares in float32)
//   code = d(rint(d(x * d(1 / s))) + z); clipped when outside [qmin, qmax]; q = clamp(code) (NaN -> 0)
//   dequantized = d(d(d(q) - d(z)) * s), compared with x in the verification sums
//
// Layout: one warp per row, 8 rows per block of 256 threads; gridDim.x = ceil((rowEnd - rowBegin) / 8).
// A warp walks its row's groups in order; per group, lanes read consecutive elements (coalesced, the
// first 256 kept in registers, longer groups read again from cache), reduce min/max by shuffles, and
// every lane derives the same qparams; then each 32-element step writes 32 consecutive code bytes and
// hands its (x, dequantized) pairs by shuffles to lanes 0..7, which add them to stat lane column % 8 in
// column order (QuantStats' fixed order), so the input is read from memory once and nothing is re-read
// to verify. Lane 0 writes the group's scale and zero point.
// x: the shard's input rows [rows][cols] of dtype SQ_DTYPE_* (row indices are the shard's).
// Out, for rows [rowBegin, rowEnd): q int8 [rows][cols], scale d [rows][cols / g], zero int8
// [rows][cols / g], stats [rows]. A row holding NaN or infinity writes only stats.nonFinite (> 0): the
// host then runs the CPU backend, which refuses the input with the reference's message.
#include "sq_common.cuh"

#define INTX_SYMMETRIC 0
#define INTX_SYMMETRIC_NO_CLIPPING_ERR 1
#define INTX_ASYMMETRIC 2

// Steps of 32 elements a lane keeps in registers per group (groups up to 256 elements: the recipes').
#define INTX_CACHED_STEPS 8

#ifdef __CUDACC__
#define INTX_UNROLL _Pragma("unroll")
#else
#define INTX_UNROLL
#endif

// The qparams of one group, the same in every lane.
struct IntxGroup {
  float s;        // scale (in d)
  float inv;      // d(1 / s)
  float z;        // zero point as the code add uses it (an integer)
  float zd;       // d(z), what dequantize subtracts
};

// One element through quantize and dequantize: writes its code, returns the dequantized value,
// counts a clipped code.
SQ_DEVICE float intx_element(float v, const IntxGroup& g, int dtype, float qmin, float qmax, signed char* out,
                             int* clipped) {
  float r = rintf(sq_round_to(__fmul_rn(v, g.inv), dtype));
  float code = sq_round_to(__fadd_rn(r, g.z), dtype);
  *clipped += !(code >= qmin && code <= qmax);
  float low = code < qmin ? qmin : code;
  float cl = qmax < low ? qmax : low;
  int qi = cl != cl ? 0 : (int)cl;  // Java's (int) NaN, for a NaN scale
  *out = (signed char)qi;
  float diff = sq_round_to(__fsub_rn(sq_round_to((float)qi, dtype), g.zd), dtype);
  return sq_round_to(__fmul_rn(diff, g.s), dtype);
}

// Hands this step's pairs (columns c0 .. c0 + 31, lane i holding column c0 + i, valid below `valid`
// lanes) to stat lanes 0..7: stat lane L takes the columns = L mod 8 in column order.
SQ_DEVICE void intx_step_stats(int lane, int c0, int valid, float v, float d, SqLane* acc) {
  int first = (lane - c0) & 7;
  for (int k = 0; k < 4; k++) {
    int src = first + 8 * k;
    float xs = __shfl_sync(0xffffffffu, v, src);
    float ds = __shfl_sync(0xffffffffu, d, src);
    if (lane < 8 && src < valid) {
      sq_lane_add(acc, xs, ds);
    }
  }
}

SQ_DEVICE void intx_store_scale(void* scale, long long i, float s, int dtype) {
  if (dtype == SQ_DTYPE_BF16) {
    ((sq_bf16*)scale)[i] = sq_float_to_bf16(s);
  } else if (dtype == SQ_DTYPE_F16) {
    ((sq_f16*)scale)[i] = sq_float_to_f16(s);
  } else {
    ((float*)scale)[i] = s;
  }
}

extern "C" __global__ void __launch_bounds__(256) intx_groupwise(
    const void* __restrict__ x, int dtype, int cols, int group, int rowBegin, int rowEnd, int mapping,
    int quantMin, int quantMax, float halfRange, float range, int symmetricZero, float eps,
    signed char* __restrict__ q, void* __restrict__ scale, signed char* __restrict__ zero,
    SqRowStats* __restrict__ stats) {
  const int lane = threadIdx.x & 31;
  const int row = sq_warp_row(rowBegin);
  if (row >= rowEnd) {
    return;  // the whole warp
  }
  const long long base = (long long)row * cols;
  const int groups = cols / group;
  const float qmin = (float)quantMin;
  const float qmax = (float)quantMax;
  const float epsD = sq_round_to(eps, dtype);

  int bad = 0;
  int clipped = 0;
  SqLane acc;
  sq_lane_init(&acc);
  for (int gi = 0; gi < groups; gi++) {
    const int g0 = gi * group;
    const long long at = base + g0;

    // min and max of the group (Java's Math.min/max); the first 256 elements stay in registers.
    float cached[INTX_CACHED_STEPS];
    float mn = INFINITY;
    float mx = -INFINITY;
    INTX_UNROLL
    for (int k = 0; k < INTX_CACHED_STEPS; k++) {
      int j = k * 32 + lane;
      cached[k] = 0.0f;
      if (j < group) {
        cached[k] = sq_load(x, at + j, dtype);
        sq_range_add(cached[k], &mn, &mx, &bad);
      }
    }
    for (int j = INTX_CACHED_STEPS * 32 + lane; j < group; j += 32) {
      sq_range_add(sq_load(x, at + j, dtype), &mn, &mx, &bad);
    }
    mn = sq_warp_min(mn);
    mx = sq_warp_max(mx);

    // choose_qparams_affine (INT domain): the block's range widened to include 0.
    const float minNeg = sq_min(mn, 0.0f);
    const float maxPos = sq_max(mx, 0.0f);
    IntxGroup gq;
    float z = sq_round_to((float)symmetricZero, dtype);
    float s;
    if (mapping == INTX_SYMMETRIC) {
      s = sq_round_to(__fdiv_rn(sq_max(-minNeg, maxPos), halfRange), dtype);
    } else if (mapping == INTX_SYMMETRIC_NO_CLIPPING_ERR) {
      float smin = sq_round_to(__fdiv_rn(minNeg, qmin), dtype);
      float smax = sq_round_to(__fdiv_rn(maxPos, qmax), dtype);
      s = smin > smax ? smin : smax;
    } else {
      s = sq_round_to(__fdiv_rn(sq_round_to(__fsub_rn(maxPos, minNeg), dtype), range), dtype);
    }
    s = s < eps ? epsD : s;
    if (mapping == INTX_ASYMMETRIC) {
      z = sq_round_to(__fsub_rn(qmin, rintf(sq_round_to(__fdiv_rn(minNeg, s), dtype))), dtype);
      z = z < qmin ? qmin : (qmax < z ? qmax : z);
    }
    // The zero point tensor: z in d, then .to(int8) (truncation; z is a whole number in range).
    const int zi = (int)z;
    gq.s = s;
    gq.inv = sq_round_to(__fdiv_rn(1.0f, s), dtype);
    gq.z = (float)zi;
    gq.zd = sq_round_to(gq.z, dtype);
    if (lane == 0) {
      intx_store_scale(scale, (long long)row * groups + gi, s, dtype);
      zero[(long long)row * groups + gi] = (signed char)zi;
    }

    // Codes, dequantized values and the stat lanes, 32 columns a step.
    INTX_UNROLL
    for (int k = 0; k < INTX_CACHED_STEPS; k++) {
      if (k * 32 < group) {  // uniform over the warp
        int j = k * 32 + lane;
        float d = 0.0f;
        if (j < group) {
          d = intx_element(cached[k], gq, dtype, qmin, qmax, &q[at + j], &clipped);
        }
        intx_step_stats(lane, g0 + k * 32, group - k * 32, cached[k], d, &acc);
      }
    }
    for (int j0 = INTX_CACHED_STEPS * 32; j0 < group; j0 += 32) {
      int j = j0 + lane;
      float v = 0.0f;
      float d = 0.0f;
      if (j < group) {
        v = sq_load(x, at + j, dtype);
        d = intx_element(v, gq, dtype, qmin, qmax, &q[at + j], &clipped);
      }
      intx_step_stats(lane, g0 + j0, group - j0, v, d, &acc);
    }
  }

  bad = sq_warp_sum(bad);
  clipped = sq_warp_sum(clipped);
  if (bad != 0) {
    sq_row_non_finite(bad, &stats[row]);
    return;
  }
  sq_warp_finish_stats(&acc, clipped, &stats[row]);
}

SQ_EMU_REGISTER(intx_groupwise)
