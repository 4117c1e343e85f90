// nf4: torchao 0.19's to_nf4(w, block_size=64, scaler_block_size=256) (torchao/dtypes/nf4tensor.py:
// NF4Tensor.from_tensor: get_block_absmax, double_quantize_scalers, convert_to_norm_float_weight) and the
// verification sums of get_original_weight(), as the reference computes them (quant/Nf4Ref.java,
// quant/Nf4Recipe.java; backend/simd/SimdNf4.java is the same math fused on the CPU). The tensor is
// flat: blocks of 64 consecutive elements (across row ends), groups of 256 blocks = 16384 elements
// sharing one quantization factor. Three kernels:
//
// nf4_block_absmax (the job's first pass, Nf4Ref.blockAbsmax): 8 lanes per block of 64, each lane 8
//   consecutive elements (one 16-byte load for 16-bit input, two for float32), a max over the 8 lanes; 4
//   blocks per warp, 32 per thread block of 256: launch with gridDim.x = ceil((blockEnd - blockBegin) /
//   32). Out: absmax float32 [blocks], the exact |x| max (a value of the input dtype). A block holding NaN
//   or infinity writes NaN: the host then runs the CPU backend, which refuses the input with the
//   reference's message (element index).
//
// nf4_quantize (second pass, Nf4Ref.quantize with the driver's scaler mean): one thread block per group,
//   blockDim.x 256, 512 or 1024 (the host launches 1024); the group's 256 blocks of 64 go 4 at a time to
//   each warp, 8 lanes per block, a lane loading 8 consecutive elements as nf4_block_absmax does: a max over
//   the 8 lanes gives the block's absmax, and each lane writes its 8 codes as one 32-bit word (even element
//   in the high nibble). The code of x is the number of the 15 thresholds c_i at or below the float32
//   quotient x / absmax (see CudaNf4.thresholds and SimdNf4: the thresholds are bisected from Nf4Ref.code,
//   so ties land where the reference puts them; a zero block's 0 / 0 = NaN passes none and gets code 0, as
//   torchao's min() gives); the thresholds sit in registers. Then thread j < 256 double-quantizes block
//   j's scaler: centred = round(absmax - mean), block max of |centred|, factor = round(round(1 /
//   round(2 * max)) * 256), q = int8(round(centred * factor)) (NaN -> 0), and the dequantized scaler
//   round(round(q / factor) + mean) for the stats kernel. Launch with gridDim.x = groupEnd - groupBegin.
//   Out: data uint8 [numel / 2] (even element in the high nibble), qscalers int8 [blocks], factors dtype
//   [groups], scalerDq float32 [blocks], bad int [groups] (non-finite inputs of the group: > 0 sends the
//   shard to the CPU backend, which refuses it).
//
// nf4_stats: QuantStats' per-row sums of x against get_original_weight's nf4[code] * scaler rounded to
//   the dtype. A row has rowThreads T threads (8 .. 128, a power of two; the host takes the least
//   covering cols / 8), blockDim.x / T rows per block; they walk the row in slices of 8T columns, thread t
//   taking columns 8t .. 8t+7 (one 16-byte load, one 32-bit load of the 8 codes and one scaler where cols
//   % 8 == 0, scalar loads otherwise), the table in shared memory. Every thread stores its elements'
//   verification terms in shared memory and the row's threads 0..7 add them on QuantStats' 8 chains
//   (sq_common.cuh, "precomputed-term row sums"). Dynamic shared memory: 64 + blockDim.x * 128 bytes.
//   Launch with gridDim.x = ceil((rowEnd - rowBegin) / (blockDim.x / T)), after nf4_quantize on the same
//   rows. Dequantized values may be NaN or infinite for finite x (f16: a group whose 2 * max overflows has
//   factor 0 and NaN scalers); they are counted as the reference counts them.
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

// The code of quotient q: the number of thresholds at or below it (a NaN passes none).
SQ_DEVICE int nf4_code(float q, const float* thresholds) {
  int code = 0;
#pragma unroll
  for (int i = 0; i < NF4_CODES - 1; i++) {
    code += q >= thresholds[i] ? 1 : 0;
  }
  return code;
}

// Whether x is 16-byte aligned, so 8 elements from a multiple of 8 are one or two 16-byte loads.
SQ_DEVICE bool nf4_aligned(const void* x) { return (reinterpret_cast<unsigned long long>(x) & 15) == 0; }

extern "C" __global__ void __launch_bounds__(256) nf4_block_absmax(const void* __restrict__ x, int dtype, int blockBegin,
                                                                int blockEnd, float* __restrict__ absmax) {
  const int lane = threadIdx.x & 31;
  // 8 lanes per block of 64, 8 consecutive elements each: 4 blocks per warp.
  const int b = blockBegin + (blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * 4 + (lane >> 3);
  if (blockBegin + (blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * 4 >= blockEnd) {
    return;  // the whole warp
  }
  const bool valid = b < blockEnd;  // lanes of blocks past the end still take part in the shuffles
  float v[8];
  sq_rt_load8(x, (long long)b * NF4_BLOCK, 8 * (lane & 7), NF4_BLOCK, valid, nf4_aligned(x), dtype, v);
  int bad = 0;
  float m = 0.0f;  // blocks.abs().max(): exact; starts at +0 as the reference's Math.max(0, |x|) does.
#pragma unroll
  for (int i = 0; i < 8; i++) {
    bad += !sq_finite(v[i]);
    m = sq_max(m, fabsf(v[i]));
  }
  bad = sq_group_sum(bad, 8);
  m = sq_group_max(m, 8);
  if (valid && (lane & 7) == 0) {
    absmax[b] = bad != 0 ? NAN : m;
  }
}

extern "C" __global__ void __launch_bounds__(1024) nf4_quantize(const void* __restrict__ x, int dtype, int groupBegin,
                                                             float mean, const float* __restrict__ params,
                                                             unsigned char* __restrict__ data,
                                                             signed char* __restrict__ qscalers,
                                                             void* __restrict__ factors, float* __restrict__ scalerDq,
                                                             int* __restrict__ bad) {
  __shared__ float blockAbsmax[NF4_SCALER_BLOCK];
  __shared__ float warpMax[8];
  __shared__ int warpBad[32];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;  // 8, 16 or 32
  const int g = groupBegin + blockIdx.x;
  // The thresholds in registers (a constant index each), the same for every thread.
  float thresholds[NF4_CODES - 1];
#pragma unroll
  for (int i = 0; i < NF4_CODES - 1; i++) {
    thresholds[i] = params[i];
  }
  const bool vec = nf4_aligned(x);

  // convert_to_norm_float_weight: 8 lanes per block of 64, 8 consecutive elements each (one 16-byte
  // load for 16-bit input), 4 blocks per warp at a time; the warp's blocks are 4 * (warp + warps * it) ...
  int badCount = 0;
  for (int it = 0; it < NF4_SCALER_BLOCK / (4 * warps); it++) {
    const int j = 4 * (warp + warps * it) + (lane >> 3);  // block within the group
    const long long e = ((long long)g * NF4_SCALER_BLOCK + j) * NF4_BLOCK + 8 * (lane & 7);
    float v[8];
    sq_rt_load8(x, e, 0, 8, true, vec, dtype, v);
    float m = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; i++) {
      badCount += !sq_finite(v[i]);
      m = sq_max(m, fabsf(v[i]));
    }
    m = sq_group_max(m, 8);
    unsigned int word = 0;  // 4 bytes, even element in the high nibble
#pragma unroll
    for (int i = 0; i < 8; i += 2) {
      const int high = nf4_code(__fdiv_rn(v[i], m), thresholds);
      const int low = nf4_code(__fdiv_rn(v[i + 1], m), thresholds);
      word |= (unsigned int)(high << 4 | low) << (4 * i);
    }
    *reinterpret_cast<unsigned int*>(data + (e >> 1)) = word;
    if ((lane & 7) == 0) {
      blockAbsmax[j] = m;
    }
  }
  badCount = sq_warp_sum(badCount);
  if (lane == 0) {
    warpBad[warp] = badCount;
  }
  __syncthreads();

  // double_quantize_scalers: thread j < 256 takes block j of the group.
  const int j = threadIdx.x;
  const float centred = j < NF4_SCALER_BLOCK ? sq_round_to(__fsub_rn(blockAbsmax[j], mean), dtype) : 0.0f;
  const float groupMax = sq_warp_max(sq_max(0.0f, fabsf(centred)));
  if (lane == 0 && warp < 8) {
    warpMax[warp] = groupMax;
  }
  __syncthreads();
  if (j >= NF4_SCALER_BLOCK) {
    return;
  }
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
    for (int w = 0; w < warps; w++) {
      total += warpBad[w];
    }
    bad[g] = total;
  }
}

// The row's partial counts of one warp (nf4_stats, rows of more than one warp).
struct Nf4WarpPart {
  int nonFinite;
  float maxErr;
};

extern "C" __global__ void __launch_bounds__(256) nf4_stats(const void* __restrict__ x, int dtype, int cols,
                                                         int rowBegin, int rowEnd, int rowThreads,
                                                         const float* __restrict__ params,
                                                         const unsigned char* __restrict__ data,
                                                         const float* __restrict__ scalerDq,
                                                         SqRowStats* __restrict__ stats) {
  SQ_DYNAMIC_SHARED(unsigned char, smem);
  const int T = rowThreads;  // 8 .. 128, a power of two
  const int slice = 8 * T;
  const int rowsPerBlock = blockDim.x / T;
  const int rg = threadIdx.x / T;
  const int t = threadIdx.x % T;
  const int lane = threadIdx.x & 31;
  const int row = rowBegin + blockIdx.x * rowsPerBlock + rg;
  const bool valid = row < rowEnd;  // threads of rows past the end still take part in barriers and shuffles
  // Shared: the 16 table values, then per row of the block the signal and error terms [slice] doubles each.
  float* table = reinterpret_cast<float*>(smem);
  double* signal = reinterpret_cast<double*>(smem + 64) + (long long)rg * 2 * slice;
  double* error = signal + slice;
  if (threadIdx.x < NF4_CODES) {
    table[threadIdx.x] = params[NF4_CODES - 1 + threadIdx.x];
  }
  __syncthreads();
  const bool vec = cols % 8 == 0 && nf4_aligned(x);
  const long long base = (long long)row * cols;
  double sig = 0.0;
  double err = 0.0;
  float maxErr = 0.0f;
  int nonFinite = 0;
  for (int s0 = 0; s0 < cols; s0 += slice) {
    const int c0 = s0 + 8 * t;
    float v[8];
    sq_rt_load8(x, base, c0, cols, valid, vec, dtype, v);
    if (valid && c0 < cols) {
      const long long i0 = base + c0;
      if (vec && c0 + 8 <= cols) {
        // 8 codes in one 32-bit word (even element in the high nibble), one scaler (i0 % 8 == 0).
        const unsigned int word = *reinterpret_cast<const unsigned int*>(data + (i0 >> 1));
        const float sd = scalerDq[i0 / NF4_BLOCK];
#pragma unroll
        for (int e = 0; e < 8; e++) {
          const int code = (word >> (8 * (e >> 1) + ((e & 1) == 0 ? 4 : 0))) & 0xF;
          const float d = sq_round_to(__fmul_rn(table[code], sd), dtype);
          sq_pair_terms(v[e], d, &signal[8 * t + e], &error[8 * t + e], &maxErr, &nonFinite);
        }
      } else {
        for (int e = 0; e < 8 && c0 + e < cols; e++) {
          const long long i = i0 + e;
          const int code = (data[i >> 1] >> ((i & 1) == 0 ? 4 : 0)) & 0xF;
          const float d = sq_round_to(__fmul_rn(table[code], scalerDq[i / NF4_BLOCK]), dtype);
          sq_pair_terms(v[e], d, &signal[8 * t + e], &error[8 * t + e], &maxErr, &nonFinite);
        }
      }
    }
    __syncthreads();
    if (valid && t < 8) {
      sq_rt_chain(signal, error, min(slice, cols - s0), t, &sig, &err);
    }
    __syncthreads();
  }
  double rowSignal = 0.0;
  double rowError = 0.0;
  sq_rt_combine(sig, err, lane - (t & 31), &rowSignal, &rowError);
  const int lanes = T < 32 ? T : 32;
  nonFinite = sq_group_sum(nonFinite, lanes);
  maxErr = sq_group_max(maxErr, lanes);
  if (T > 32) {
    // Across the row's warps, through shared memory (the term slices are free now).
    Nf4WarpPart* parts = reinterpret_cast<Nf4WarpPart*>(smem + 64);
    if (lane == 0) {
      parts[threadIdx.x >> 5] = Nf4WarpPart{nonFinite, maxErr};
    }
    __syncthreads();
    if (t == 0) {
      for (int w = 1; w < T / 32; w++) {
        const Nf4WarpPart o = parts[(threadIdx.x >> 5) + w];
        nonFinite += o.nonFinite;
        maxErr = fmaxf(maxErr, o.maxErr);
      }
    }
  }
  if (valid && t == 0) {
    SqRowStats out;
    out.signal = rowSignal;
    out.error = rowError;
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
