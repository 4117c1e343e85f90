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
// Layout: one block per row (blockDim.x a multiple of 32, at most 256; the host takes about 16 elements a
// thread); gridDim.x = rowEnd - rowBegin. The row is read from global memory once, with 16-byte loads
// where it is aligned (sq_row_load), into shared memory when cacheRow (the host's choice: when it fits
// in 48 KiB with the rest) or read again from global memory otherwise. The block then walks the row in
// passes of P = max(1, SQ_TERM_TILE / g) groups: the pass's groups' qparams, each group on an aligned set
// of lanes (a power of two, up to a warp, as many as the block has for P groups; several groups in flight
// per warp), reduced by shuffles, into shared memory (lanes 0 of each group also write its scale and zero
// point); then codes and verification terms of the pass's elements, SQ_TERM_TILE at a time, through
// sq_term_sums (threads 0..7 only add precomputed terms, a tile behind the codes).
// Dynamic shared memory: SQ_TERM_TILE_BYTES; P floats s, P floats d(1 / s), P ints z; then (cacheRow),
// 16-byte aligned, the row's cols * dtype size bytes rounded up to 16.
#include "sq_common.cuh"

#define INTX_SYMMETRIC 0
#define INTX_SYMMETRIC_NO_CLIPPING_ERR 1
#define INTX_ASYMMETRIC 2

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
  float r = rintf(sq_round_to_hw(__fmul_rn(v, g.inv), dtype));
  float code = sq_round_to_hw(__fadd_rn(r, g.z), dtype);
  *clipped += !(code >= qmin && code <= qmax);
  float low = code < qmin ? qmin : code;
  float cl = qmax < low ? qmax : low;
  int qi = cl != cl ? 0 : (int)cl;  // Java's (int) NaN, for a NaN scale
  *out = (signed char)qi;
  float diff = sq_round_to_hw(__fsub_rn(sq_round_to_hw((float)qi, dtype), g.zd), dtype);
  return sq_round_to_hw(__fmul_rn(diff, g.s), dtype);
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

extern "C" __global__ void __launch_bounds__(256, 8) intx_groupwise(
    const void* __restrict__ x, int dtype, int cols, int group, int rowBegin, int rowEnd, int mapping,
    int quantMin, int quantMax, float halfRange, float range, int symmetricZero, float eps, int cacheRow,
    signed char* __restrict__ q, void* __restrict__ scale, signed char* __restrict__ zero,
    SqRowStats* __restrict__ stats) {
  SQ_DYNAMIC_SHARED(unsigned char, smem);
  const int row = rowBegin + blockIdx.x;
  if (row >= rowEnd) {
    return;  // the whole block
  }
  const long long base = (long long)row * cols;
  const int groups = cols / group;
  const int perPass = group < SQ_TERM_TILE ? SQ_TERM_TILE / group : 1;  // P
  float* passScale = (float*)(smem + SQ_TERM_TILE_BYTES);
  float* passInv = passScale + perPass;
  int* passZero = (int*)(passInv + perPass);
  unsigned char* cache = 0;
  if (cacheRow) {
    cache = smem + ((SQ_TERM_TILE_BYTES + 12 * perPass + 15) & ~15);
  }
  const float qmin = (float)quantMin;
  const float qmax = (float)quantMax;
  const float epsD = sq_round_to(eps, dtype);

  int bad = 0;
  sq_row_load(x, row, cols, dtype, cache, [&](float v) { bad += !sq_finite(v); });
  bad = sq_block_sum(bad);  // its barriers also publish the cached row
  if (bad != 0) {
    sq_block_row_non_finite(bad, &stats[row]);
    return;  // the whole block
  }
  const void* src = cache != 0 ? (const void*)cache : (const void*)((const unsigned char*)x + base * sq_dtype_bytes(dtype));

  // Lanes per group in the qparams phase: a power of two up to 32 with P groups' lanes within the block.
  int lanes = 1;
  while (lanes < 32 && 2 * lanes * perPass <= (int)blockDim.x) {
    lanes *= 2;
  }
  const int slot = threadIdx.x / lanes;   // the pass's group this thread reduces (+ a multiple of blockDim / lanes)
  const int sub = threadIdx.x & (lanes - 1);
  const int slots = blockDim.x / lanes;

  int clipped = 0;
  SqTermSums sums;
  sq_term_sums_init(&sums, smem);
  for (int p0 = 0; p0 < groups; p0 += perPass) {
    const int inPass = min(perPass, groups - p0);
    for (int s0 = 0; s0 < inPass; s0 += slots) {  // uniform over the block
      const int gi = s0 + slot;
      const bool mine = gi < inPass;
      // min and max of the group (Java's Math.min/max, in no particular order: the row is finite).
      float mn = INFINITY;
      float mx = -INFINITY;
      if (mine) {
        const int at = (p0 + gi) * group;
        for (int j = sub; j < group; j += lanes) {
          float v = sq_load_hw(src, at + j, dtype);
          mn = sq_min(mn, v);
          mx = sq_max(mx, v);
        }
      }
      mn = sq_group_min(mn, lanes);
      mx = sq_group_max(mx, lanes);
      if (mine) {
        // choose_qparams_affine (INT domain): the block's range widened to include 0.
        const float minNeg = sq_min(mn, 0.0f);
        const float maxPos = sq_max(mx, 0.0f);
        float z = sq_round_to((float)symmetricZero, dtype);
        float s;
        if (mapping == INTX_SYMMETRIC) {
          s = sq_round_to_hw(__fdiv_rn(sq_max(-minNeg, maxPos), halfRange), dtype);
        } else if (mapping == INTX_SYMMETRIC_NO_CLIPPING_ERR) {
          float smin = sq_round_to_hw(__fdiv_rn(minNeg, qmin), dtype);
          float smax = sq_round_to_hw(__fdiv_rn(maxPos, qmax), dtype);
          s = smin > smax ? smin : smax;
        } else {
          s = sq_round_to_hw(__fdiv_rn(sq_round_to_hw(__fsub_rn(maxPos, minNeg), dtype), range), dtype);
        }
        s = s < eps ? epsD : s;
        if (mapping == INTX_ASYMMETRIC) {
          z = sq_round_to(__fsub_rn(qmin, rintf(sq_round_to(__fdiv_rn(minNeg, s), dtype))), dtype);
          z = z < qmin ? qmin : (qmax < z ? qmax : z);
        }
        // The zero point tensor: z in d, then .to(int8) (truncation; z is a whole number in range).
        const int zi = (int)z;
        if (sub == 0) {
          passScale[gi] = s;
          passInv[gi] = sq_round_to_hw(__fdiv_rn(1.0f, s), dtype);
          passZero[gi] = zi;
          intx_store_scale(scale, (long long)row * groups + p0 + gi, s, dtype);
          zero[(long long)row * groups + p0 + gi] = (signed char)zi;
        }
      }
    }
    __syncthreads();

    // Codes, dequantized values and their verification terms, a tile at a time.
    const int e0 = p0 * group;
    const int e1 = (p0 + inPass) * group;
    for (int t0 = e0; t0 < e1; t0 += SQ_TERM_TILE) {
      sq_term_sums_tile(&sums, t0, min(SQ_TERM_TILE, e1 - t0), [&](int j, float* xv, float* dv) {
        const int gi = j / group - p0;
        IntxGroup gq;
        gq.s = passScale[gi];
        gq.inv = passInv[gi];
        gq.z = (float)passZero[gi];
        gq.zd = sq_round_to_hw(gq.z, dtype);
        float v = sq_load_hw(src, j, dtype);
        *xv = v;
        *dv = intx_element(v, gq, dtype, qmin, qmax, &q[base + j], &clipped);
      });
    }
  }
  sq_term_sums_finish(&sums, clipped, &stats[row]);
}

SQ_EMU_REGISTER(intx_groupwise)
