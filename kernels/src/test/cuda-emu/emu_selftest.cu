// Kernels that exist only to test the emulator itself (CudaEmulatorTest): it must run barriers and
// shuffles as a GPU does, and fail loudly where a GPU would silently corrupt memory or hang.
#include "sq_common.cuh"

// out[blockIdx.x * blockDim.x + t]: the sum over the warp of (t + 1), then the block's total through
// shared memory and __syncthreads.
extern "C" __global__ void emu_reduce(int* out) {
  __shared__ int partial[32];
  int t = threadIdx.x;
  int v = sq_warp_sum(t + 1);
  if ((t & 31) == 0) {
    partial[t >> 5] = v;
  }
  __syncthreads();
  int total = 0;
  for (int w = 0; w < (int)(blockDim.x + 31) / 32; w++) {
    total += partial[w];
  }
  out[blockIdx.x * blockDim.x + t] = v * 100000 + total;
}

// Writes one element past the end of out (n elements).
extern "C" __global__ void emu_overrun(int* out, int n) {
  if (threadIdx.x == 0) {
    out[n] = 1;
  }
}

// Thread 0 skips the barrier the others wait at: a deadlock on a GPU.
extern "C" __global__ void emu_divergent_barrier(int* out) {
  if (threadIdx.x != 0) {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

// Odd lanes return before the shuffle the even ones read them with.
extern "C" __global__ void emu_shuffle_exited(int* out) {
  if (threadIdx.x & 1) {
    return;
  }
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
}

// Memory order in one warp of 32: each lane stores to shared and global memory; then `ordering` (0
// none, 1 __syncwarp, 2 __syncthreads, 3 __threadfence, 4 __threadfence_block), a shuffle, and reads of
// the next lane's stores. out[0..32): -1, then the stores; out[32 + t]: lane t's read of its own
// stores; out[64 + t], out[96 + t]: its reads of lane t + 1's shared and global store (-1 where that
// store has not reached lane t).
extern "C" __global__ void emu_memory_order(int* out, int ordering) {
  __shared__ int cell[32];
  int t = threadIdx.x;
  cell[t] = -1;
  out[t] = -1;
  __syncthreads();
  cell[t] = t + 1;
  out[t] = t + 101;
  out[32 + t] = cell[t] * 1000 + out[t];
  if (ordering == 1) {
    __syncwarp();
  } else if (ordering == 2) {
    __syncthreads();
  } else if (ordering == 3) {
    __threadfence();
  } else if (ordering == 4) {
    __threadfence_block();
  }
  int next = __shfl_sync(0xffffffffu, t, (t + 1) & 31);
  out[64 + t] = cell[next];
  out[96 + t] = out[next];
}

SQ_EMU_REGISTER(emu_reduce)
SQ_EMU_REGISTER(emu_overrun)
SQ_EMU_REGISTER(emu_divergent_barrier)
SQ_EMU_REGISTER(emu_shuffle_exited)
SQ_EMU_REGISTER(emu_memory_order)
