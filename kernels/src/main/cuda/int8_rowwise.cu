// int8-weight-only (and int8-dynamic: same weights) for bfloat16 weights: torchao 0.19's
// Int8Tensor.from_hp, symmetric per-row int8, as shardquant's reference computes it
// (kernels/src/main/java/shardquant/kernels/quant/Int8Recipe.java, AffineQuantRef.chooseQParams and
// AffineElementwise.unclamped for MappingType.SYMMETRIC, ZeroPointDomain.INT, quant range -128..127,
// eps 2^-126 as AffineSpec.defaultEps gives for bf16), in torchao/quantization/quant_primitives.py's
// _choose_qparams_affine and _quantize_affine_no_dtype_cast.
//
// NOT YET RUN ON A GPU. Written on a machine without one (nvcc only): it compiles to PTX in the build,
// but nothing here has been checked against the reference. CudaInt8Test does that on a GPU machine
// (kernels/src/main/cuda/README.md).
//
// Every float op below is an explicit round-to-nearest-even intrinsic (__fdiv_rn, __fmul_rn, rintf),
// so neither --use_fast_math nor FMA contraction can change a bit: PyTorch eager computes each op in
// float32 and rounds its result to the tensor's dtype, and so must we.
//
// Layout: x is bf16 [rows][cols] row-major (raw bits, little endian as safetensors stores them);
// q is int8 [rows][cols]; scale is float32 [rows] (torchao's [N][1]); zero_point is all 0 and the host
// writes it; clipped[r] counts row r's codes outside [-128, 127] before the clamp (verification).
//
// One block per row, blockDim a multiple of 32 (at most 1024): a block-wide min/max reduction, then every
// thread quantizes its strided columns. Launch with gridDim.x = rows.
#include <cuda_bf16.h>

#define QUANT_MIN (-128.0f)
#define QUANT_MAX 127.0f

extern "C" __global__ void int8_rowwise_bf16(const __nv_bfloat16* __restrict__ x, int rows, int cols,
                                             signed char* __restrict__ q, float* __restrict__ scale,
                                             int* __restrict__ clipped) {
  __shared__ float smin[32];
  __shared__ float smax[32];
  __shared__ float sscale;
  __shared__ int sclipped;
  const int row = blockIdx.x;
  if (row >= rows) {
    return;
  }
  const __nv_bfloat16* xr = x + (long long)row * cols;
  signed char* qr = q + (long long)row * cols;

  // torch.aminmax(input, dim=-1) over the row (exact: min and max never round). Inputs are finite:
  // the host refuses NaN and infinity before launching, as AffineQuantRef.checkedValues does.
  float mn = INFINITY;
  float mx = -INFINITY;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    float v = __bfloat162float(xr[c]);
    mn = fminf(mn, v);
    mx = fmaxf(mx, v);
  }
  for (int off = 16; off > 0; off >>= 1) {
    mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, off));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
  }
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int warps = (blockDim.x + 31) >> 5;
  if (lane == 0) {
    smin[warp] = mn;
    smax[warp] = mx;
  }
  if (threadIdx.x == 0) {
    sclipped = 0;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < warps; w++) {
      mn = fminf(mn, smin[w]);
      mx = fmaxf(mx, smax[w]);
    }
    // min_val_neg = torch.min(min_val, torch.zeros_like(min_val)); max_val_pos = torch.max(max_val, zeros)
    float minNeg = fminf(mn, 0.0f);
    float maxPos = fmaxf(mx, 0.0f);
    // SYMMETRIC: max_val_pos = torch.max(-min_val_neg, max_val_pos) (bf16, exact)
    float amax = fmaxf(-minNeg, maxPos);
    // scale = max_val_pos / (float(quant_max - quant_min) / 2): a bf16 tensor divided by the Python
    // float 127.5, computed in float32 and rounded to bf16.
    float s = __bfloat162float(__float2bfloat16_rn(__fdiv_rn(amax, 127.5f)));
    // scale = torch.clamp(scale, min=eps): compared in float32, eps stored in bf16 (2^-126 is exact).
    // A signed zero from an all-zero row is below eps too, so fminf/fmaxf's choice of zero sign is moot.
    const float eps = 1.17549435e-38f;  // 2^-126
    if (s < eps) {
      s = __bfloat162float(__float2bfloat16_rn(eps));
    }
    // scale.to(torch.float32): exact. zero_point = int((quant_max + quant_min + 1) / 2) = 0, int8.
    sscale = s;
    scale[row] = s;
  }
  __syncthreads();

  // _quantize_affine_no_dtype_cast: torch.clamp(torch.round(input * (1.0 / scale)) + zero_point, qmin, qmax)
  // 1.0 / scale: float32 reciprocal of the float32 scale, correctly rounded.
  const float inv = __fdiv_rn(1.0f, sscale);
  int clip = 0;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    // input * inv: bf16 times float32 promotes to float32, one rounding.
    // torch.round: round half to even (rintf). + zero_point (0): exact in float32.
    float code = rintf(__fmul_rn(__bfloat162float(xr[c]), inv));
    if (!(code >= QUANT_MIN && code <= QUANT_MAX)) {
      clip++;
    }
    // torch.clamp(..., -128, 127) then .to(torch.int8): the clamped value is a whole number in range.
    code = fminf(fmaxf(code, QUANT_MIN), QUANT_MAX);
    qr[c] = (signed char)(int)code;
  }
  if (clip != 0) {
    atomicAdd(&sclipped, clip);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    clipped[row] = sclipped;
  }
}
