// tinygemm int4 weights on the device, the other direction from quantization: unpacking a stored layout
// to codes, packing codes into a layout, and dequantizing any layout straight to bf16/f16/f32. Reproduces
// the Java reference byte for byte (repack/Int4Layout, TinygemmInt4Tensor.repack and .dequantize;
// layout/TensorCoreTiledInt4Layout, CpuInt4Layout, TinygemmScaleZero): PyTorch's
// _convert_weight_to_int4pack (CUDA tensor-core tiled, innerKTiles 2/4/8), _convert_weight_to_int4pack_for_cpu
// (AVX-512 64-row blocks), torchao's pack/unpack_tinygemm_scales_and_zeros, and torchao 0.19's
// _dequantize_affine_tinygemm_no_dtype_check: ((q - mid).to(out) * scale) + zero, each step rounded to out.
//
// Layouts (SQ_INT4_*): TILE qdata int32 [N'/8][K'/(16 ikt)][32][ikt/2] with scale_and_zero bf16 [K'/g][N'][2]
// (N', K' torchao's padded sizes); CPU qdata uint8 [N][K/2] with scale_and_zero bf16 [K/g][N][2]; PLAIN qdata
// int8 [N][K] (tinygemm code - 8) with scale and zero_point bf16 [N][K/g]. "Codes" are uint8 [N][K], the
// tinygemm code 0..15 of the original (unpadded) N x K, row-major: the form every conversion goes through.
//
// Launch shape: 1-D grids of 256-thread blocks with grid-stride loops over 64-bit indices, one thread per
// unit: unpack walks the SOURCE's storage units (a tile word = 8 codes, a cpu byte = 2 codes, a plain byte),
// so its reads are coalesced and it sees every padding code; pack walks the DESTINATION's units, so its
// writes are coalesced and it writes every padding code; the scale/zero kernels walk scale_and_zero
// [G'][N'] (consecutive threads, consecutive rows: coalesced on the interleaved side); dequantize walks the
// output elements (coalesced 2/4-byte writes, which dominate the traffic; the nibble reads are 1/4-1/8 of it).
// Padding of the tiled form that is not torchao's zero padding, and plain codes outside -8..7, are counted
// in *bad (an integer atomic per offending thread); the host then runs the Java reference, which refuses
// with its own message. No kernel here needs __syncthreads or shuffles: the units are independent.
#include "sq_common.cuh"

#define SQ_INT4_TILE 0
#define SQ_INT4_CPU 1
#define SQ_INT4_PLAIN 2

#define SQ_INT4_THREADS 256

// Word index and nibble shift of code q[r][c] in the tensor-core tiled layout of a paddedK-column tensor
// (TensorCoreTiledInt4Layout's class comment: word [nt][kt][t][p], bits 4j (even column) / 16+4j (odd)).
SQ_DEVICE long long sq_tile_word(long long r, long long c, long long paddedK, int ikt, int* shift) {
  const long long superK = 16LL * ikt;
  const long long superTiles = paddedK / superK;
  const long long nt = r >> 3;
  const long long kt = c / superK;
  const int o = (int)(c % superK);
  const int p = o >> 5;
  const int rem = o & 31;
  const int j = rem >> 3;
  const int rem8 = rem & 7;
  const int t = 4 * (int)(r & 7) + (rem8 >> 1);
  *shift = (rem8 & 1) ? 16 + 4 * j : 4 * j;
  return ((nt * superTiles + kt) * 32 + t) * (ikt / 2) + p;
}

// Byte index and nibble shift of code q[r][c] in the cpu layout of an n x k tensor (CpuInt4Layout): 64-row
// blocks, column-major inside a block; a full block pairs rows j and j + 32 (low, high nibble), the last,
// shorter block pairs rows 2j and 2j + 1.
SQ_DEVICE long long sq_cpu_byte(long long r, long long c, long long n, long long k, int* shift) {
  const long long r0 = r & ~63LL;
  const long long rows = n - r0 < 64 ? n - r0 : 64;
  const long long j = r - r0;
  const long long base = r0 * (k / 2);
  if (rows == 64) {
    *shift = j < 32 ? 0 : 4;
    return base + c * 32 + (j & 31);
  }
  *shift = (int)(j & 1) * 4;
  return base + c * (rows / 2) + (j >> 1);
}

// The inverse of sq_tile_word for a whole word: tile word w of a paddedK-column tensor holds codes
// q[r][c + 8j + e] (j 0..3, e 0..1) at bits e * 16 + 4j.
SQ_DEVICE void sq_tile_word_origin(long long w, long long paddedK, int ikt, long long* r, long long* c) {
  const long long pairs = ikt / 2;
  const long long superTiles = paddedK / (16LL * ikt);
  const long long p = w % pairs;
  const long long t = (w / pairs) % 32;
  const long long kt = (w / (pairs * 32)) % superTiles;
  const long long nt = w / (pairs * 32 * superTiles);
  *r = 8 * nt + t / 4;
  *c = 16 * (ikt * kt + 2 * p) + 2 * (t % 4);
}

// The inverse of sq_cpu_byte for a whole byte: byte b of the cpu layout of an n x k tensor holds
// q[*low][*col] in its low nibble and q[*high][*col] in its high one.
SQ_DEVICE void sq_cpu_byte_codes(long long b, long long n, long long k, long long* low, long long* high,
                                 long long* col) {
  const long long r0 = (b / (32LL * k)) * 64;  // a full 64-row block is 32 k bytes
  const long long rows = n - r0 < 64 ? n - r0 : 64;
  const long long off = b - r0 * (k / 2);
  const long long j = off % (rows / 2);
  *col = off / (rows / 2);
  *low = r0 + (rows == 64 ? j : 2 * j);
  *high = rows == 64 ? *low + 32 : *low + 1;
}

// Unpacks the source's storage units to codes [n][k] (original size). TILE: src int32 words of an
// srcN x srcK padded tensor, innerKTiles ikt; codes outside n x k must be padCode. CPU: src bytes [n][k/2]
// (srcN, srcK unused). PLAIN: src int8 [n][k], each in -8..7. *bad counts codes that break these rules.
extern "C" __global__ void __launch_bounds__(256) int4_unpack_codes(int layout, const void* __restrict__ src, int n, int k, int srcN, int srcK, int ikt, int padCode, unsigned char* __restrict__ codes, int* __restrict__ bad) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  const long long nk = (long long)n * k;
  int wrong = 0;
  if (layout == SQ_INT4_TILE) {
    const long long words = (long long)srcN * srcK / 8;
    for (long long w = (long long)blockIdx.x * blockDim.x + threadIdx.x; w < words; w += stride) {
      const unsigned int word = ((const unsigned int*)src)[w];
      long long r;
      long long c;
      sq_tile_word_origin(w, srcK, ikt, &r, &c);
      for (int j = 0; j < 4; j++) {
        for (int e = 0; e < 2; e++) {
          const int code = (int)((word >> (e * 16 + 4 * j)) & 0xFu);
          const long long cc = c + 8 * j + e;
          if (r < n && cc < k) {
            codes[r * k + cc] = (unsigned char)code;
          } else {
            wrong += code != padCode;
          }
        }
      }
    }
  } else if (layout == SQ_INT4_CPU) {
    const long long bytes = nk / 2;
    for (long long b = (long long)blockIdx.x * blockDim.x + threadIdx.x; b < bytes; b += stride) {
      const unsigned int v = ((const unsigned char*)src)[b];
      long long low;
      long long high;
      long long col;
      sq_cpu_byte_codes(b, n, k, &low, &high, &col);
      codes[low * k + col] = (unsigned char)(v & 0xFu);
      codes[high * k + col] = (unsigned char)((v >> 4) & 0xFu);
    }
  } else {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < nk; i += stride) {
      const int v = ((const signed char*)src)[i];
      wrong += v < -8 || v > 7;
      codes[i] = (unsigned char)((v + 8) & 0xF);
    }
  }
  if (wrong != 0) {
    atomicAdd(bad, wrong);
  }
}

// Packs codes [n][k] into the destination layout, one destination unit per thread. TILE: int32 words of a
// dstN x dstK padded tensor (codes outside n x k are padCode), innerKTiles ikt. CPU: bytes [n][k/2].
// PLAIN: int8 [n][k] = code - 8.
extern "C" __global__ void __launch_bounds__(256) int4_pack_codes(int layout, const unsigned char* __restrict__ codes, int n, int k, int dstN, int dstK, int ikt, int padCode, void* __restrict__ dst) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  const long long nk = (long long)n * k;
  if (layout == SQ_INT4_TILE) {
    const long long words = (long long)dstN * dstK / 8;
    for (long long w = (long long)blockIdx.x * blockDim.x + threadIdx.x; w < words; w += stride) {
      long long r;
      long long c;
      sq_tile_word_origin(w, dstK, ikt, &r, &c);
      unsigned int word = 0;
      for (int j = 0; j < 4; j++) {
        for (int e = 0; e < 2; e++) {
          const long long cc = c + 8 * j + e;
          const unsigned int code = (r < n && cc < k) ? codes[r * k + cc] : (unsigned int)padCode;
          word |= code << (e * 16 + 4 * j);
        }
      }
      ((unsigned int*)dst)[w] = word;
    }
  } else if (layout == SQ_INT4_CPU) {
    const long long bytes = nk / 2;
    for (long long b = (long long)blockIdx.x * blockDim.x + threadIdx.x; b < bytes; b += stride) {
      long long low;
      long long high;
      long long col;
      sq_cpu_byte_codes(b, n, k, &low, &high, &col);
      ((unsigned char*)dst)[b] = (unsigned char)(codes[low * k + col] | (codes[high * k + col] << 4));
    }
  } else {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < nk; i += stride) {
      ((signed char*)dst)[i] = (signed char)((int)codes[i] - 8);
    }
  }
}

// scale_and_zero [szGroups][szN][2] to scale and zero [n][groups] (TinygemmScaleZero.scale/zero, cropped);
// entries outside n x groups must hold the bits padScale / padZero (torchao's padding), else *bad counts them.
extern "C" __global__ void __launch_bounds__(256) int4_unpack_scale_zero(const sq_bf16* __restrict__ sz, int n, int groups, int szN, int szGroups, int padScale, int padZero, sq_bf16* __restrict__ scale, sq_bf16* __restrict__ zero, int* __restrict__ bad) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  const long long total = (long long)szGroups * szN;
  int wrong = 0;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    const long long g = i / szN;
    const long long r = i % szN;
    const sq_bf16 s = sz[2 * i];
    const sq_bf16 z = sz[2 * i + 1];
    if (r < n && g < groups) {
      scale[r * groups + g] = s;
      zero[r * groups + g] = z;
    } else {
      wrong += (s != (sq_bf16)padScale) + (z != (sq_bf16)padZero);
    }
  }
  if (wrong != 0) {
    atomicAdd(bad, wrong);
  }
}

// scale and zero [n][groups] to scale_and_zero [szGroups][szN][2] (TinygemmScaleZero.pack), entries outside
// n x groups filled with the padding bits padScale / padZero.
extern "C" __global__ void __launch_bounds__(256) int4_pack_scale_zero(const sq_bf16* __restrict__ scale, const sq_bf16* __restrict__ zero, int n, int groups, int szN, int szGroups, int padScale, int padZero, sq_bf16* __restrict__ sz) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  const long long total = (long long)szGroups * szN;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    const long long g = i / szN;
    const long long r = i % szN;
    const bool kept = r < n && g < groups;
    sz[2 * i] = kept ? scale[r * groups + g] : (sq_bf16)padScale;
    sz[2 * i + 1] = kept ? zero[r * groups + g] : (sq_bf16)padZero;
  }
}

// Dequantizes the top-left n x k of a stored tensor to out [n][k] of dtype outDtype (SQ_DTYPE_*), as
// TinygemmInt4Tensor.dequantize: v = (q - mid) with q the stored code (TILE/CPU: tinygemm code, mid 8;
// PLAIN: the int8 code, mid 0), in float32 (exact) and rounded to out; v = round_out(v * scale);
// v = round_out(v + zero). TILE/CPU read scale_and_zero sz [K'/g][szN][2] (zero unused); PLAIN reads
// scale and zero [n][k/g]. TILE: q is the word array of a padded tensor of srcK columns, innerKTiles ikt.
extern "C" __global__ void __launch_bounds__(256) int4_dequantize(int layout, const void* __restrict__ q, const sq_bf16* __restrict__ scaleOrSz, const sq_bf16* __restrict__ zero, int n, int k, int srcK, int ikt, int groupSize, int szN, int outDtype, void* __restrict__ out) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  const long long nk = (long long)n * k;
  const long long groups = (long long)k / groupSize;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < nk; i += stride) {
    const long long r = i / k;
    const long long c = i % k;
    const long long g = c / groupSize;
    float v;
    float s;
    float z;
    if (layout == SQ_INT4_PLAIN) {
      v = (float)((const signed char*)q)[i];
      s = sq_bf16_to_float(scaleOrSz[r * groups + g]);
      z = sq_bf16_to_float(zero[r * groups + g]);
    } else {
      int shift;
      unsigned int code;
      if (layout == SQ_INT4_TILE) {
        const long long w = sq_tile_word(r, c, srcK, ikt, &shift);
        code = (((const unsigned int*)q)[w] >> shift) & 0xFu;
      } else {
        const long long b = sq_cpu_byte(r, c, n, k, &shift);
        code = (((const unsigned char*)q)[b] >> shift) & 0xFu;
      }
      v = __fsub_rn((float)code, 8.0f);
      const long long e = 2 * (g * szN + r);
      s = sq_bf16_to_float(scaleOrSz[e]);
      z = sq_bf16_to_float(scaleOrSz[e + 1]);
    }
    v = sq_round_to(v, outDtype);
    v = sq_round_to(__fmul_rn(v, s), outDtype);
    v = sq_round_to(__fadd_rn(v, z), outDtype);
    if (outDtype == SQ_DTYPE_BF16) {
      ((sq_bf16*)out)[i] = sq_float_to_bf16(v);
    } else if (outDtype == SQ_DTYPE_F16) {
      ((sq_f16*)out)[i] = sq_float_to_f16(v);
    } else {
      ((float*)out)[i] = v;
    }
  }
}

SQ_EMU_REGISTER(int4_unpack_codes)
SQ_EMU_REGISTER(int4_pack_codes)
SQ_EMU_REGISTER(int4_unpack_scale_zero)
SQ_EMU_REGISTER(int4_pack_scale_zero)
SQ_EMU_REGISTER(int4_dequantize)
