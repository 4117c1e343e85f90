// Helpers every shardquant kernel shares, written so the same source compiles for the GPU (nvcc -ptx)
// and for the host emulator that runs the kernels in CI (kernels/src/test/cuda-emu, plain g++): dtype
// conversions as bit operations (no cuda_bf16.h / cuda_fp16.h, whose device and host paths differ),
// explicit round-to-nearest float ops, and the fixed-order verification sums of QuantStats.
//
// Numerics rules for every kernel here:
//  - Each float op is one IEEE float32 op rounded to nearest even, as PyTorch eager computes it. The
//    build passes --fmad=false to nvcc (and the emulator -ffp-contract=off to g++), so a*b+c is never
//    fused; the __f*_rn spellings below make the intent visible where it matters most.
//  - bf16/f16 rounding is done with integer bit operations, identical on both sides.
#pragma once

#ifdef __CUDACC__
#define SQ_DEVICE __device__ __forceinline__
#define SQ_EMU_REGISTER(kernel)
#else
#include "sq_emu.h"
#endif

typedef unsigned short sq_bf16;  // raw bits, as safetensors stores them (little endian)
typedef unsigned short sq_f16;

// Input dtypes, as the host passes them (CudaKernels.DTYPE_*).
#define SQ_DTYPE_BF16 0
#define SQ_DTYPE_F16 1
#define SQ_DTYPE_F32 2

SQ_DEVICE float sq_bits_float(unsigned int u) { return __uint_as_float(u); }
SQ_DEVICE unsigned int sq_float_bits(float f) { return __float_as_uint(f); }

SQ_DEVICE float sq_bf16_to_float(sq_bf16 b) { return sq_bits_float(((unsigned int)b) << 16); }

// c10::BFloat16's round_to_nearest_even; NaN becomes PyTorch's canonical 0x7FC0.
SQ_DEVICE sq_bf16 sq_float_to_bf16(float f) {
  if (f != f) {
    return (sq_bf16)0x7FC0;
  }
  unsigned int bits = sq_float_bits(f);
  unsigned int lsb = (bits >> 16) & 1u;
  return (sq_bf16)((bits + 0x7FFFu + lsb) >> 16);
}

SQ_DEVICE float sq_round_bf16(float f) { return sq_bf16_to_float(sq_float_to_bf16(f)); }

SQ_DEVICE float sq_f16_to_float(sq_f16 h) {
  unsigned int sign = ((unsigned int)h & 0x8000u) << 16;
  unsigned int exp = ((unsigned int)h >> 10) & 0x1Fu;
  unsigned int mant = (unsigned int)h & 0x3FFu;
  if (exp == 0x1Fu) {
    return sq_bits_float(sign | 0x7F800000u | (mant << 13));
  }
  if (exp == 0) {
    float magnitude = __fmul_rn((float)mant, 5.9604644775390625e-8f);  // mant * 2^-24, exact
    return sign ? -magnitude : magnitude;
  }
  return sq_bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

// IEEE binary16 round to nearest even with subnormals and overflow to infinity (kernels' F16.fromFloat).
SQ_DEVICE sq_f16 sq_float_to_f16(float f) {
  unsigned int bits = sq_float_bits(f);
  unsigned int sign = (bits >> 16) & 0x8000u;
  if (f != f) {
    return (sq_f16)(sign | 0x7E00u);
  }
  float a = fabsf(f);
  if (a >= 65520.0f) {
    return (sq_f16)(sign | 0x7C00u);
  }
  if (a < 6.103515625e-5f) {  // 2^-14: subnormal range, ulp 2^-24
    unsigned int mant = (unsigned int)rintf(__fmul_rn(a, 16777216.0f));
    return (sq_f16)(sign | mant);
  }
  unsigned int absBits = bits & 0x7FFFFFFFu;
  unsigned int lsb = (absBits >> 13) & 1u;
  unsigned int rounded = absBits + 0xFFFu + lsb;
  unsigned int exp = (rounded >> 23) - 112u;
  unsigned int mant = (rounded >> 13) & 0x3FFu;
  return (sq_f16)(sign | (exp << 10) | mant);
}

SQ_DEVICE float sq_round_f16(float f) { return sq_f16_to_float(sq_float_to_f16(f)); }

// Element i of an input row of dtype SQ_DTYPE_*, as float32 (exact for every input dtype).
SQ_DEVICE float sq_load(const void* base, long long i, int dtype) {
  if (dtype == SQ_DTYPE_BF16) {
    return sq_bf16_to_float(((const sq_bf16*)base)[i]);
  }
  if (dtype == SQ_DTYPE_F16) {
    return sq_f16_to_float(((const sq_f16*)base)[i]);
  }
  return ((const float*)base)[i];
}

// A float32 result rounded to the input dtype and back (PyTorch storing a result in a bf16/f16 tensor).
SQ_DEVICE float sq_round_to(float f, int dtype) {
  if (dtype == SQ_DTYPE_BF16) {
    return sq_round_bf16(f);
  }
  if (dtype == SQ_DTYPE_F16) {
    return sq_round_f16(f);
  }
  return f;
}

SQ_DEVICE bool sq_finite(float f) { return fabsf(f) <= 3.402823466e38f; }

// One lane of QuantStats' fixed summation order (verify/QuantStats.java): element j of a stat block
// (a row) goes to lane j % 8, and each lane adds (double)x*x and e*e, e = (double)x - d, in element
// order, with no fused multiply-add; non-finite pairs add nothing and are counted apart.
struct SqLane {
  double signal;
  double error;
  float maxErr;
  int nonFinite;
};

SQ_DEVICE void sq_lane_init(SqLane* l) {
  l->signal = 0.0;
  l->error = 0.0;
  l->maxErr = 0.0f;
  l->nonFinite = 0;
}

SQ_DEVICE void sq_lane_add(SqLane* l, float x, float d) {
  if (!sq_finite(x) || !sq_finite(d)) {
    l->nonFinite++;
    return;
  }
  double e = __dsub_rn((double)x, (double)d);
  l->signal = __dadd_rn(l->signal, __dmul_rn((double)x, (double)x));
  l->error = __dadd_rn(l->error, __dmul_rn(e, e));
  l->maxErr = fmaxf(l->maxErr, (float)fabs(e));
}

// The combination QuantStats.combineLanes fixes: ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
SQ_DEVICE double sq_combine_lanes(const double* l) {
  return __dadd_rn(__dadd_rn(__dadd_rn(l[0], l[1]), __dadd_rn(l[2], l[3])),
                   __dadd_rn(__dadd_rn(l[4], l[5]), __dadd_rn(l[6], l[7])));
}

// Java's Math.min / Math.max for finite or infinite floats (the reference's): -0.0 is below +0.0.
// fminf/fmaxf leave the sign of a zero result unspecified, so the kernels use these instead.
SQ_DEVICE float sq_min(float a, float b) {
  return (a < b || (a == b && (sq_float_bits(a) & 0x80000000u))) ? a : b;
}
SQ_DEVICE float sq_max(float a, float b) {
  return (a > b || (a == b && !(sq_float_bits(a) & 0x80000000u))) ? a : b;
}

// Per stat block (row) verification sums, as the host reads them (CudaRowStats.java): 32 bytes, little endian.
struct SqRowStats {
  double signal;   // lanes combined
  double error;    // lanes combined
  float maxErr;
  int clipped;     // codes outside [quant_min, quant_max] before the clamp
  int nonFinite;   // non-finite (x, dequantized) pairs, left out of the sums; > 0 sends the shard to the CPU
  int pad;
};

// The row of a shard this warp quantizes, for kernels that give each warp one row (blockDim.x / 32 rows
// per block, from rowBegin).
SQ_DEVICE int sq_warp_row(int rowBegin) {
  return rowBegin + blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
}

// Adds input element v to a running range (Java's Math.min / Math.max) and counts it in *bad if it is
// NaN or infinite.
SQ_DEVICE void sq_range_add(float v, float* mn, float* mx, int* bad) {
  *bad += !sq_finite(v);
  *mn = sq_min(*mn, v);
  *mx = sq_max(*mx, v);
}

// The stats of a row holding NaN or infinity: only nonFinite, the warp's count (> 0), which sends the
// shard to the CPU backend. Lane 0 writes.
SQ_DEVICE void sq_row_non_finite(int bad, SqRowStats* out) {
  if ((threadIdx.x & 31) == 0) {
    SqRowStats s = {0.0, 0.0, 0.0f, 0, bad, 0};
    *out = s;
  }
}

// Reductions over aligned groups of `lanes` lanes (2, 4, 8, 16 or 32): every lane of the warp must call
// them (the emulator checks), and each gets its group's result. The warp-wide ones are lanes = 32.
SQ_DEVICE float sq_group_min(float v, int lanes) {
  for (int off = lanes >> 1; off > 0; off >>= 1) v = sq_min(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
SQ_DEVICE float sq_group_max(float v, int lanes) {
  for (int off = lanes >> 1; off > 0; off >>= 1) v = sq_max(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
SQ_DEVICE int sq_group_sum(int v, int lanes) {
  for (int off = lanes >> 1; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
SQ_DEVICE float sq_warp_min(float v) { return sq_group_min(v, 32); }
SQ_DEVICE float sq_warp_max(float v) { return sq_group_max(v, 32); }
SQ_DEVICE int sq_warp_sum(int v) { return sq_group_sum(v, 32); }

// Finishes a stat block whose lanes 0..7 of this warp each hold one SqLane (lanes 8..31 pass anything);
// every lane must call it. Lane 0 writes the block's sums, with clipped (already warp-summed) and the
// non-finite count of the lanes.
SQ_DEVICE void sq_warp_finish_stats(const SqLane* mine, int clipped, SqRowStats* out) {
  double signal[8];
  double error[8];
  float maxErr = 0.0f;
  int nonFinite = 0;
  for (int l = 0; l < 8; l++) {
    signal[l] = __shfl_sync(0xffffffffu, mine->signal, l);
    error[l] = __shfl_sync(0xffffffffu, mine->error, l);
    maxErr = fmaxf(maxErr, __shfl_sync(0xffffffffu, mine->maxErr, l));
    nonFinite += __shfl_sync(0xffffffffu, mine->nonFinite, l);
  }
  if ((threadIdx.x & 31) == 0) {
    out->signal = sq_combine_lanes(signal);
    out->error = sq_combine_lanes(error);
    out->maxErr = maxErr;
    out->clipped = clipped;
    out->nonFinite = nonFinite;
    out->pad = 0;
  }
}

// ---- precomputed-term row sums (int4/nf4) ----
// QuantStats' fixed-order sums with the arithmetic taken off the serial chains. A row is worked on by a
// row group of T threads (8..128, a power of two; a multiple of 32 when it spans warps), thread t taking 8
// consecutive columns 8t .. 8t+7 of each slice of 8T columns (one 16-byte load for 16-bit input). Per
// slice every thread computes its elements' terms with sq_pair_terms ((double)x*x and e*e, e = (double)x - d,
// in shared memory in element order; a non-finite pair stores zeros and is counted apart, as
// sq_lane_add leaves it out), then, after a barrier, the row group's threads 0..7 (the chain threads)
// only add them: chain c adds elements c, c+8, ... of the slice in order (sq_rt_chain), which is
// SqLane c's order over the row. Adding a stored zero changes nothing: the sums start at +0 and no term
// is negative, so the bytes are sq_lane_add's. sq_rt_combine then combines the 8 chains as
// sq_warp_finish_stats does. maxErr and nonFinite do not depend on the order and are reduced over all
// threads of the group.

// Dynamic shared memory (the emulator defines its own in sq_emu.h).
#ifndef SQ_DYNAMIC_SHARED
#define SQ_DYNAMIC_SHARED(type, name)                          \
  extern __shared__ __align__(16) unsigned char sq_dyn_smem[]; \
  type* name = reinterpret_cast<type*>(sq_dyn_smem)
#endif

// A 16-bit element (bf16 or f16 bits) as float32, exact; f16 with the GPU's conversion for non-NaN
// values (a NaN input is refused anyway, but keeps the software bits).
SQ_DEVICE float sq_half_to_float(unsigned int h, int dtype) {
  if (dtype == SQ_DTYPE_BF16) {
    return sq_bf16_to_float((sq_bf16)h);
  }
#ifdef __CUDACC__
  if ((h & 0x7FFFu) <= 0x7C00u) {
    float r;
    asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"((unsigned short)h));
    return r;
  }
#endif
  return sq_f16_to_float((sq_f16)h);
}

// The terms of one (x, dequantized) pair, as sq_lane_add would add them; |e| folded into *maxErr.
SQ_DEVICE void sq_pair_terms(float x, float d, double* signal, double* error, float* maxErr, int* nonFinite) {
  if (!sq_finite(x) || !sq_finite(d)) {
    ++*nonFinite;
    *signal = 0.0;
    *error = 0.0;
    return;
  }
  double e = __dsub_rn((double)x, (double)d);
  *signal = __dmul_rn((double)x, (double)x);
  *error = __dmul_rn(e, e);
  *maxErr = fmaxf(*maxErr, (float)fabs(e));
}

// Elements c .. c+7 of the row starting at element `base` of input x (dtype SQ_DTYPE_*) as float32, zero
// past `cols` and for a row that is not `real`. vec: x is 16-byte aligned and cols % 8 == 0 (so is every
// row start and c, a multiple of 8): a whole 8 in range is one 16-byte load (two for float32).
SQ_DEVICE void sq_rt_load8(const void* __restrict__ x, long long base, int c, int cols, bool real, bool vec,
                           int dtype, float* v) {
  if (real && vec && c + 8 <= cols) {
    if (dtype == SQ_DTYPE_F32) {
      const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(x) + base + c);
      const float4 a = p[0];
      const float4 b = p[1];
      v[0] = a.x;
      v[1] = a.y;
      v[2] = a.z;
      v[3] = a.w;
      v[4] = b.x;
      v[5] = b.y;
      v[6] = b.z;
      v[7] = b.w;
    } else {
      const uint4 w = *reinterpret_cast<const uint4*>(static_cast<const unsigned short*>(x) + base + c);
      const unsigned int words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
      for (int i = 0; i < 4; i++) {
        v[2 * i] = sq_half_to_float(words[i] & 0xFFFFu, dtype);
        v[2 * i + 1] = sq_half_to_float(words[i] >> 16, dtype);
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < 8; i++) {
      v[i] = real && c + i < cols ? sq_load(x, base + c + i, dtype) : 0.0f;
    }
  }
}

// Chain thread c (0..7) adds the slice's terms c, c+8, ... below count, in order.
SQ_DEVICE void sq_rt_chain(const double* signal, const double* error, int count, int c, double* sig, double* err) {
  double s = *sig;
  double e = *err;
#pragma unroll 4
  for (int j = c; j < count; j += 8) {
    s = __dadd_rn(s, signal[j]);
    e = __dadd_rn(e, error[j]);
  }
  *sig = s;
  *err = e;
}

// The row's sums from its 8 chains, held by lanes chain0 .. chain0+7 of this warp (QuantStats.combineLanes);
// every lane of the warp calls it and gets them.
SQ_DEVICE void sq_rt_combine(double sig, double err, int chain0, double* signal, double* error) {
  double s[8];
  double e[8];
#pragma unroll
  for (int l = 0; l < 8; l++) {
    s[l] = __shfl_sync(0xffffffffu, sig, chain0 + l);
    e[l] = __shfl_sync(0xffffffffu, err, chain0 + l);
  }
  *signal = sq_combine_lanes(s);
  *error = sq_combine_lanes(e);
}

// ---- precomputed-term row sums (int8/intx) ----
// For kernels that give a whole block one row (int8_rowwise, intx_groupwise): every thread computes the
// terms sq_lane_add would add for its elements ((double)x*x and e*e, e = (double)x - d; 0.0 and a count
// for a non-finite pair: the sums start at +0.0 and only grow, so adding +0.0 leaves their bits as
// skipping the pair does) into a shared-memory tile, and threads 0..7 of the block, the 8 stat lanes, only
// add a tile's terms in element order while the block computes the next tile into the other buffer
// (double buffering, one __syncthreads a tile). Tiles may start anywhere in the row: stat lane L takes
// the tile's elements j with j % 8 == L, in order.

// Elements of a term tile; the tiles' shared memory is SQ_TERM_TILE_BYTES at the start of the block's
// dynamic shared memory: signal[2][SQ_TERM_TILE], error[2][SQ_TERM_TILE].
#define SQ_TERM_TILE 512
#define SQ_TERM_TILE_BYTES (4 * SQ_TERM_TILE * 8)

// Dynamic shared memory: SQ_DYNAMIC_SHARED, defined in the int4/nf4 section above.

// sq_round_to with the GPU's conversion instructions where they give PyTorch's bits (round to nearest
// even, overflow to infinity, subnormals kept: cvt.rn.bf16.f32 / cvt.rn.f16.f32); NaN takes the software
// path (PyTorch's canonical NaN, not the instruction's). The emulator runs sq_round_to itself.
SQ_DEVICE float sq_round_to_hw(float f, int dtype) {
#ifdef __CUDACC__
  if (dtype == SQ_DTYPE_F32) {
    return f;
  }
  if (f != f) {
    return sq_round_to(f, dtype);
  }
  unsigned short h;
  if (dtype == SQ_DTYPE_BF16) {
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return sq_bf16_to_float(h);
  }
  float r;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h));
  return r;
#else
  return sq_round_to(f, dtype);
#endif
}

// Element i of a row of dtype SQ_DTYPE_*, as sq_load (f16 as sq_half_to_float).
SQ_DEVICE float sq_load_hw(const void* base, long long i, int dtype) {
  if (dtype == SQ_DTYPE_F32) {
    return ((const float*)base)[i];
  }
  return sq_half_to_float(((const unsigned short*)base)[i], dtype);
}

SQ_DEVICE int sq_dtype_bytes(int dtype) { return dtype == SQ_DTYPE_F32 ? 4 : 2; }

// Loads row `row` of x ([rows][cols] of dtype) once from global memory: 16-byte vector loads, four in
// flight a thread, where the row starts 16-byte aligned (element loads otherwise and for the tail),
// copying the raw bytes to `cache` (shared memory, 16-byte aligned, cols * size bytes rounded up to 16)
// when it is not null, and calling each(v) with every element as float32 (in no fixed order; each once).
// Every thread of the block calls it; a thread reads back only what it cached itself until a barrier.
template <class Each>
SQ_DEVICE void sq_row_load(const void* x, long long row, int cols, int dtype, unsigned char* cache, Each each) {
  const int size = sq_dtype_bytes(dtype);
  const unsigned char* src = (const unsigned char*)x + row * cols * size;
  const int perVec = 16 / size;
  const int vecs = ((unsigned long long)src & 15u) == 0 ? cols / perVec : 0;
  const int t = threadIdx.x;
  const int b = blockDim.x;
  for (int v0 = t; v0 < vecs; v0 += 4 * b) {
    uint4 r[4];
#ifdef __CUDACC__
#pragma unroll
#endif
    for (int k = 0; k < 4; k++) {
      if (v0 + k * b < vecs) {
        r[k] = ((const uint4*)src)[v0 + k * b];
      }
    }
#ifdef __CUDACC__
#pragma unroll
#endif
    for (int k = 0; k < 4; k++) {
      if (v0 + k * b < vecs) {
        if (cache != 0) {
          ((uint4*)cache)[v0 + k * b] = r[k];
        }
        unsigned int w[4] = {r[k].x, r[k].y, r[k].z, r[k].w};
        for (int e = 0; e < 4; e++) {
          if (dtype == SQ_DTYPE_F32) {
            each(sq_bits_float(w[e]));
          } else {
            each(sq_half_to_float(w[e] & 0xFFFFu, dtype));  // little endian: the lower element first
            each(sq_half_to_float(w[e] >> 16, dtype));
          }
        }
      }
    }
  }
  for (int j = vecs * perVec + t; j < cols; j += b) {
    if (cache != 0) {
      if (size == 4) {
        ((unsigned int*)cache)[j] = ((const unsigned int*)src)[j];
      } else {
        ((unsigned short*)cache)[j] = ((const unsigned short*)src)[j];
      }
    }
    each(sq_load_hw(src, j, dtype));
  }
}

// Block-wide reductions (every thread calls them, and gets the block's result); they end with a barrier,
// so they may follow one another.
SQ_DEVICE float sq_block_min(float v) {
  __shared__ float part[32];
  v = sq_warp_min(v);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = part[0];
  for (int w = 1; w < (int)(blockDim.x >> 5); w++) r = sq_min(r, part[w]);
  __syncthreads();
  return r;
}
SQ_DEVICE float sq_block_max(float v) {
  __shared__ float part[32];
  v = sq_warp_max(v);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = part[0];
  for (int w = 1; w < (int)(blockDim.x >> 5); w++) r = sq_max(r, part[w]);
  __syncthreads();
  return r;
}
SQ_DEVICE int sq_block_sum(int v) {
  __shared__ int part[32];
  v = sq_warp_sum(v);
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
  __syncthreads();
  int r = 0;
  for (int w = 0; w < (int)(blockDim.x >> 5); w++) r += part[w];
  __syncthreads();
  return r;
}

// The stats of a row holding NaN or infinity, for kernels that give a block one row: only nonFinite, the
// block's count (> 0), which sends the shard to the CPU backend. Thread 0 writes.
SQ_DEVICE void sq_block_row_non_finite(int bad, SqRowStats* out) {
  if (threadIdx.x == 0) {
    SqRowStats s = {0.0, 0.0, 0.0f, 0, bad, 0};
    *out = s;
  }
}

// One block's verification sums of a row, fed tile by tile (SQ_TERM_TILE elements at most, in row order).
struct SqTermSums {
  double* tiles;  // the dynamic shared memory's first SQ_TERM_TILE_BYTES
  SqLane lane;    // threads 0..7: stat lane threadIdx.x; maxErr and nonFinite: this thread's pairs
  int pending;    // buffer of the tile the stat lanes add next, or -1
  int pendingBase;
  int pendingCount;
  int next;       // buffer the next tile goes to
};

SQ_DEVICE void sq_term_sums_init(SqTermSums* s, unsigned char* dynamicShared) {
  s->tiles = (double*)dynamicShared;
  sq_lane_init(&s->lane);
  s->pending = -1;
  s->pendingBase = 0;
  s->pendingCount = 0;
  s->next = 0;
}

// Stat lanes add the pending tile (elements j of the row with j % 8 == lane, in order).
SQ_DEVICE void sq_term_sums_drain(SqTermSums* s) {
  if (s->pending >= 0 && threadIdx.x < 8) {
    const double* sig = s->tiles + s->pending * SQ_TERM_TILE;
    const double* err = s->tiles + (2 + s->pending) * SQ_TERM_TILE;
    double a = s->lane.signal;
    double b = s->lane.error;
    const int first = ((int)threadIdx.x - s->pendingBase) & 7;
#ifdef __CUDACC__
#pragma unroll 8
#endif
    for (int i = first; i < s->pendingCount; i += 8) {
      a = __dadd_rn(a, sig[i]);
      b = __dadd_rn(b, err[i]);
    }
    s->lane.signal = a;
    s->lane.error = b;
  }
  s->pending = -1;
}

// Elements [base, base + count) of the row (count <= SQ_TERM_TILE): every thread calls it; pair(j, &x,
// &d) gives element j's input and dequantized value (and does the rest of the element's work, its code).
// Threads take elements base + threadIdx.x + k * blockDim.x; the stat lanes add the previous tile
// meanwhile; ends with a barrier.
template <class Pair>
SQ_DEVICE void sq_term_sums_tile(SqTermSums* s, int base, int count, Pair pair) {
  double* sig = s->tiles + s->next * SQ_TERM_TILE;
  double* err = s->tiles + (2 + s->next) * SQ_TERM_TILE;
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    float x;
    float d;
    pair(base + i, &x, &d);
    sq_pair_terms(x, d, &sig[i], &err[i], &s->lane.maxErr, &s->lane.nonFinite);
  }
  sq_term_sums_drain(s);
  __syncthreads();
  s->pending = s->next;
  s->pendingBase = base;
  s->pendingCount = count;
  s->next ^= 1;
}

// Adds the last tile and writes the row's stats (thread 0), with clipped summed over the block; returns
// the block's non-finite pair count. Every thread calls it.
SQ_DEVICE int sq_term_sums_finish(SqTermSums* s, int clipped, SqRowStats* out) {
  __shared__ double lanes[16];
  sq_term_sums_drain(s);
  if (threadIdx.x < 8) {
    lanes[threadIdx.x] = s->lane.signal;
    lanes[8 + threadIdx.x] = s->lane.error;
  }
  float maxErr = sq_block_max(s->lane.maxErr);  // |e| >= +0.0: Java's max is fmaxf's here
  int nonFinite = sq_block_sum(s->lane.nonFinite);
  clipped = sq_block_sum(clipped);
  if (threadIdx.x == 0) {
    out->signal = sq_combine_lanes(lanes);
    out->error = sq_combine_lanes(lanes + 8);
    out->maxErr = maxErr;
    out->clipped = clipped;
    out->nonFinite = nonFinite;
    out->pad = 0;
  }
  return nonFinite;
}
