// A host emulator of the CUDA execution model, enough to run shardquant's kernels (src/main/cuda) on a
// machine without a GPU: each launch runs every block in turn, each CUDA thread of the block a fiber
// on one OS thread, switched at __syncthreads and at every warp shuffle, so barriers and shuffles really
// synchronize (a barrier some threads never reach is reported as a deadlock), and static storage stands
// in for __shared__. A lane's stores to shared and global memory stay pending, unseen by the other
// lanes, until a __syncwarp, __syncthreads, fence or the block's end (emu_main.cpp, "Memory order").
// Built with g++ -fsanitize=address, so an out-of-bounds access fails the test instead of corrupting
// memory silently as it would on a GPU. See README.md here.
//
// Supported: threadIdx/blockIdx/blockDim/gridDim, __syncthreads, __syncwarp, __threadfence,
// __threadfence_block, __shfl_sync, __shfl_xor_sync, __shfl_down_sync (full warps only: a shuffle
// reading an exited lane aborts), atomicAdd/atomicMax/atomicOr on int and unsigned, the __f*_rn/__d*_rn
// ops, __float_as_uint and back.
// Not supported (and not used): float atomics, cooperative groups, textures, partial-mask shuffles,
// memcpy/memset on device memory (they would bypass the memory order).
#pragma once

#include <atomic>
#include <cmath>
#include <math.h>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
// The section tells the memory order which addresses are shared memory (-fsanitize-sections keeps
// AddressSanitizer's redzones around them).
#define __shared__ static __attribute__((section("sq_shared")))
#define __launch_bounds__(...)
#define SQ_DEVICE static inline

struct uint3 {
  unsigned int x, y, z;
};
typedef uint3 dim3;
struct uint2 {
  unsigned int x, y;
};
struct uint4 {
  unsigned int x, y, z, w;
};
struct float4 {
  float x, y, z, w;
};
struct float2 {
  float x, y;
};

namespace sq_emu {
struct ThreadState {
  uint3 tIdx, bIdx, bDim, gDim;
  int linear;  // thread index within the block
};
extern ThreadState* current;  // the running fiber's
void syncthreads();
void syncwarp();
void fence();
// Puts this lane's 8 bytes in the warp's exchange, then returns lane src's.
uint64_t exchange(uint64_t mine, int src);
unsigned char* dynamicShared();

// 1 + the running thread's index in its block while its loads and stores follow the emulated memory
// order (emu_main.cpp), else 0.
extern int trackedLane;
// An atomic acts on memory itself, not on what the memory order shows the lane, as on a GPU.
struct Untracked {
  int saved = trackedLane;
  Untracked() { trackedLane = 0; }
  ~Untracked() { trackedLane = saved; }
  Untracked(const Untracked&) = delete;
  Untracked& operator=(const Untracked&) = delete;
};

void registerKernel(const char* name, const std::string& signature, void (*invoke)(const std::vector<uint64_t>& args));

template <class T>
struct Tag;
template <class T>
struct Tag<T*> {
  static char kind() { return 'P'; }
  static T* get(uint64_t v) { return reinterpret_cast<T*>(static_cast<uintptr_t>(v)); }
};
template <>
struct Tag<int> {
  static char kind() { return 'I'; }
  static int get(uint64_t v) { return static_cast<int>(static_cast<uint32_t>(v)); }
};
template <>
struct Tag<unsigned int> {
  static char kind() { return 'I'; }
  static unsigned int get(uint64_t v) { return static_cast<uint32_t>(v); }
};
template <>
struct Tag<long long> {
  static char kind() { return 'L'; }
  static long long get(uint64_t v) { return static_cast<long long>(v); }
};
template <>
struct Tag<float> {
  static char kind() { return 'F'; }
  static float get(uint64_t v) {
    uint32_t u = static_cast<uint32_t>(v);
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

template <auto Kernel, class... A, size_t... I>
void invokeWith(void (*)(A...), const std::vector<uint64_t>& args, std::index_sequence<I...>) {
  Kernel(Tag<A>::get(args[I])...);
}

template <auto Kernel, class... A>
void registerTyped(const char* name, void (*)(A...)) {
  std::string signature{Tag<A>::kind()...};
  registerKernel(name, signature, [](const std::vector<uint64_t>& args) {
    invokeWith<Kernel>(Kernel, args, std::index_sequence_for<A...>{});
  });
}

struct Registrar {
  template <class F>
  Registrar(F f) {
    f();
  }
};
}  // namespace sq_emu

#define threadIdx (sq_emu::current->tIdx)
#define blockIdx (sq_emu::current->bIdx)
#define blockDim (sq_emu::current->bDim)
#define gridDim (sq_emu::current->gDim)

// Each kernel file ends with SQ_EMU_REGISTER(name) for every kernel, so the emulator can launch it by name.
#define SQ_EMU_REGISTER(kernel) \
  static sq_emu::Registrar sq_emu_reg_##kernel([] { sq_emu::registerTyped<kernel>(#kernel, kernel); });

// Dynamic shared memory: SQ_DYNAMIC_SHARED(float, buf) instead of extern __shared__ float buf[].
#define SQ_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(sq_emu::dynamicShared())

inline void __syncthreads() { sq_emu::syncthreads(); }
inline void __syncwarp(unsigned int = 0xffffffffu) { sq_emu::syncwarp(); }
inline void __threadfence() { sq_emu::fence(); }
inline void __threadfence_block() { sq_emu::fence(); }

template <class T>
inline T sq_emu_shfl(T v, int src) {
  static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  uint64_t got = sq_emu::exchange(bits, src);
  T out;
  std::memcpy(&out, &got, sizeof(T));
  return out;
}
template <class T>
inline T __shfl_sync(unsigned int, T v, int src, int width = 32) {
  int lane = sq_emu::current->linear & 31;
  return sq_emu_shfl(v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <class T>
inline T __shfl_xor_sync(unsigned int, T v, int mask, int width = 32) {
  int lane = sq_emu::current->linear & 31;
  int src = lane ^ mask;
  if ((src & ~(width - 1)) != (lane & ~(width - 1))) {
    src = lane;
  }
  return sq_emu_shfl(v, src);
}
template <class T>
inline T __shfl_down_sync(unsigned int, T v, unsigned int delta, int width = 32) {
  int lane = sq_emu::current->linear & 31;
  int src = lane + (int)delta;
  if ((src & ~(width - 1)) != (lane & ~(width - 1))) {
    src = lane;
  }
  return sq_emu_shfl(v, src);
}

template <class T>
inline T atomicAdd(T* p, T v) {
  sq_emu::Untracked direct;
  return std::atomic_ref<T>(*p).fetch_add(v);
}
template <class T>
inline T atomicOr(T* p, T v) {
  sq_emu::Untracked direct;
  return std::atomic_ref<T>(*p).fetch_or(v);
}
template <class T>
inline T atomicMax(T* p, T v) {
  sq_emu::Untracked direct;
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old < v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}

inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline unsigned int __float_as_uint(float f) {
  unsigned int u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline int __float_as_int(float f) { return static_cast<int>(__float_as_uint(f)); }
inline float __int_as_float(int i) { return __uint_as_float(static_cast<unsigned int>(i)); }
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
#ifndef INFINITY
#define INFINITY __builtin_inff()
#endif
