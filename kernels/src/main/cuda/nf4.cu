// nf4: torchao 0.19's to_nf4(w, block_size=64, scaler_block_size=256) (torchao/dtypes/nf4tensor.py:
// NF4Tensor.from_tensor: get_block_absmax, double_quantize_scalers, convert_to_norm_float_weight) and the
// verification sums of get_original_weight(), as the reference computes them (quant/Nf4Ref.java,
// quant/Nf4Recipe.java; backend/simd/SimdNf4.java is the same math fused on the CPU). The tensor is
// flat: blocks of 64 consecutive elements (across row ends), groups of 256 blocks = 16384 elements
// sharing one quantization factor. Three kernels:
//
// nf4_block_absmax (the job's first pass, Nf4Ref.blockAbsmax): one warp per block of 64, each lane two
//   consecutive elements (coalesced), a warp max; 8 warps (blocks of 64) per thread block, launch with
//   gridDim.x = ceil((blockEnd - blockBegin) / 8). Out: absmax float32 [blocks], the exact |x| max (a
//   value of the input dtype). A block holding NaN or infinity writes NaN: the host then runs the CPU
//   backend, which refuses the input with the reference's message (element index).
//
// nf4_quantize (second pass, Nf4Ref.quantize with the driver's scaler mean): one thread block of 256
//   threads per group; warp w takes blocks 32w .. 32w+31 of the group one after another: each lane loads
//   elements 2*lane and 2*lane+1 (coalesced), the warp reduces the block's absmax, and each lane writes
//   the byte of its two codes (32 consecutive bytes per block). The code of x is the number of the 15
//   thresholds c_i at or below the float32 quotient x / absmax (see CudaNf4.thresholds and SimdNf4: the
//   thresholds are bisected from Nf4Ref.code, so ties land where the reference puts them; a zero
//   block's 0 / 0 = NaN passes none and gets code 0, as torchao's min() gives). Then thread j
//   double-quantizes block j's scaler: centred = round(absmax - mean), block max of |centred|, factor
//   = round(round(1 / round(2 * max)) * 256), q = int8(round(centred * factor)) (NaN -> 0), and the
//   dequantized scaler round(round(q / factor) + mean) for the stats kernel. Launch with gridDim.x =
//   groupEnd - groupBegin. Out: data uint8 [numel / 2] (even element in the high nibble), qscalers int8
//   [blocks], factors dtype [groups], scalerDq float32 [blocks], bad int [groups] (non-finite inputs of
//   the group: > 0 sends the shard to the CPU backend, which refuses it).
//
// nf4_stats: QuantStats' per-row sums of x against get_original_weight's nf4[code] * scaler rounded to
//   the dtype: eight lanes per row (4 rows per warp, 32 rows per block of 256 threads), lane j of a row
//   walking stat lane j in element order (QuantStats' fixed order; the 8 partials then combine as
//   sq_warp_finish_stats does). Launch with gridDim.x = ceil((rowEnd - rowBegin) / 32), after
//   nf4_quantize on the same rows. Dequantized values may be NaN or infinite for finite x (f16: a group
//   whose 2 * max overflows has factor 0 and NaN scalers); they are counted as the reference counts them.
//
// params (float32 [32], from the host): thresholds c_1 .. c_15 of the dtype, then the 16 table values
// nf4[0..15] rounded to the dtype (Nf4Ref.table).
#include "sq_common.cuh"

#define NF4_BLOCK 64
#define NF4_SCALER_BLOCK 256
#define NF4_CODES 16

// Stores f (already a value of dtype) as dtype into element i of out.
SQ_DEVICE void nf4_store(void* out, long long i, float f, int dtype) {
  if (dtype == SQ_DTYPE_BF16) {
    ((sq_bf16*)out)[i] = sq_float_to_bf16(f);
  } else if (dtype == SQ_DTYPE_F16) {
    ((sq_f16*)out)[i] = sq_float_to_f16(f);
  } else {
    ((float*)out)[i] = f;
  }
}

// Nf4Ref.toInt8: .round().clamp(-128, 127).to(torch.int8), NaN to 0 (x86's truncating cast).
SQ_DEVICE signed char nf4_to_int8(float v) {
  float r = rintf(v);
  if (r != r) {
    return 0;
  }
  r = r < -128.0f ? -128.0f : r;
  r = r > 127.0f ? 127.0f : r;
  return (signed char)(int)r;
}

SQ_DEVICE int nf4_code(float q, const float* thresholds) {
  int code = 0;
  for (int i = 0; i < NF4_CODES - 1; i++) {
    code += q >= thresholds[i] ? 1 : 0;
  }
  return code;
}

extern "C" __global__ void __launch_bounds__(256) nf4_block_absmax(const void* __restrict__ x, int dtype, int blockBegin,
                                                                int blockEnd, float* __restrict__ absmax) {
  const int lane = threadIdx.x & 31;
  const int b = blockBegin + blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (b >= blockEnd) {
    return;  // the whole warp
  }
  const long long e = (long long)b * NF4_BLOCK + 2 * lane;
  const float v0 = sq_load(x, e, dtype);
  const float v1 = sq_load(x, e + 1, dtype);
  const int bad = sq_warp_sum(!sq_finite(v0) + !sq_finite(v1));
  // blocks.abs().max(): exact; starts at +0 as the reference's Math.max(0, |x|) does.
  const float m = sq_warp_max(sq_max(sq_max(0.0f, fabsf(v0)), fabsf(v1)));
  if (lane == 0) {
    absmax[b] = bad != 0 ? NAN : m;
  }
}

extern "C" __global__ void __launch_bounds__(256) nf4_quantize(const void* __restrict__ x, int dtype, int groupBegin,
                                                            float mean, const float* __restrict__ params,
                                                            unsigned char* __restrict__ data,
                                                            signed char* __restrict__ qscalers,
                                                            void* __restrict__ factors, float* __restrict__ scalerDq,
                                                            int* __restrict__ bad) {
  __shared__ float thresholds[NF4_CODES - 1];
  __shared__ float blockAbsmax[NF4_SCALER_BLOCK];
  __shared__ float warpMax[8];
  __shared__ int warpBad[8];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int g = groupBegin + blockIdx.x;
  if (threadIdx.x < NF4_CODES - 1) {
    thresholds[threadIdx.x] = params[threadIdx.x];
  }
  __syncthreads();

  // convert_to_norm_float_weight, block by block.
  int badCount = 0;
  for (int k = 0; k < 32; k++) {
    const int j = warp * 32 + k;  // block within the group
    const long long b = (long long)g * NF4_SCALER_BLOCK + j;
    const long long e = b * NF4_BLOCK + 2 * lane;
    const float v0 = sq_load(x, e, dtype);
    const float v1 = sq_load(x, e + 1, dtype);
    badCount += !sq_finite(v0) + !sq_finite(v1);
    const float m = sq_warp_max(sq_max(sq_max(0.0f, fabsf(v0)), fabsf(v1)));
    const int high = nf4_code(__fdiv_rn(v0, m), thresholds);
    const int low = nf4_code(__fdiv_rn(v1, m), thresholds);
    data[e >> 1] = (unsigned char)(high << 4 | low);
    if (lane == 0) {
      blockAbsmax[j] = m;
    }
  }
  badCount = sq_warp_sum(badCount);
  if (lane == 0) {
    warpBad[warp] = badCount;
  }
  __syncthreads();

  // double_quantize_scalers: thread j takes block j of the group.
  const int j = threadIdx.x;
  const float centred = sq_round_to(__fsub_rn(blockAbsmax[j], mean), dtype);
  const float groupMax = sq_warp_max(sq_max(0.0f, fabsf(centred)));
  if (lane == 0) {
    warpMax[warp] = groupMax;
  }
  __syncthreads();
  float scalerAbsmax = warpMax[0];
  for (int w = 1; w < 8; w++) {
    scalerAbsmax = sq_max(scalerAbsmax, warpMax[w]);
  }
  // 256 / (2 * absmax) is Tensor.__rtruediv__: reciprocal, then times 256, each rounded to the dtype.
  const float twice = sq_round_to(__fmul_rn(2.0f, scalerAbsmax), dtype);
  const float factor = sq_round_to(__fmul_rn(sq_round_to(__fdiv_rn(1.0f, twice), dtype), 256.0f), dtype);
  const signed char q = nf4_to_int8(sq_round_to(__fmul_rn(centred, factor), dtype));
  const long long b = (long long)g * NF4_SCALER_BLOCK + j;
  qscalers[b] = q;
  // get_original_weight's dequantize_scalers, on the stored int8 and factor.
  scalerDq[b] = sq_round_to(__fadd_rn(sq_round_to(__fdiv_rn((float)q, factor), dtype), mean), dtype);
  if (threadIdx.x == 0) {
    nf4_store(factors, g, factor, dtype);
    int total = 0;
    for (int w = 0; w < 8; w++) {
      total += warpBad[w];
    }
    bad[g] = total;
  }
}

extern "C" __global__ void __launch_bounds__(256) nf4_stats(const void* __restrict__ x, int dtype, int cols,
                                                         int rowBegin, int rowEnd, const float* __restrict__ params,
                                                         const unsigned char* __restrict__ data,
                                                         const float* __restrict__ scalerDq,
                                                         SqRowStats* __restrict__ stats) {
  const int lane = threadIdx.x & 31;
  const int statLane = lane & 7;
  const int row = rowBegin + (blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * 4 + (lane >> 3);
  const bool valid = row < rowEnd;  // lanes of rows past the end still take part in the shuffles
  const float* table = params + (NF4_CODES - 1);
  const long long base = (long long)row * cols;
  SqLane acc;
  sq_lane_init(&acc);
  if (valid) {
    for (int c = statLane; c < cols; c += 8) {
      const long long i = base + c;
      const int code = (data[i >> 1] >> ((i & 1) == 0 ? 4 : 0)) & 0xF;
      const float d = sq_round_to(__fmul_rn(table[code], scalerDq[i / NF4_BLOCK]), dtype);
      sq_lane_add(&acc, sq_load(x, i, dtype), d);
    }
  }
  // sq_warp_finish_stats for each group of 8 lanes (one row each).
  double signal[8];
  double error[8];
  float maxErr = 0.0f;
  int nonFinite = 0;
  for (int l = 0; l < 8; l++) {
    const int src = (lane & ~7) + l;
    signal[l] = __shfl_sync(0xffffffffu, acc.signal, src);
    error[l] = __shfl_sync(0xffffffffu, acc.error, src);
    maxErr = fmaxf(maxErr, __shfl_sync(0xffffffffu, acc.maxErr, src));
    nonFinite += __shfl_sync(0xffffffffu, acc.nonFinite, src);
  }
  if (valid && statLane == 0) {
    SqRowStats out;
    out.signal = sq_combine_lanes(signal);
    out.error = sq_combine_lanes(error);
    out.maxErr = maxErr;
    out.clipped = 0;
    out.nonFinite = nonFinite;
    out.pad = 0;
    stats[row] = out;
  }
}

SQ_EMU_REGISTER(nf4_block_absmax)
SQ_EMU_REGISTER(nf4_quantize)
SQ_EMU_REGISTER(nf4_stats)
