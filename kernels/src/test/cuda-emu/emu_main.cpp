// The emulator process (see sq_emu.h): reads launch requests on stdin, runs the kernel on the host,
// answers on stdout. Protocol (little endian), one request at a time, spoken by EmulatedCudaDevice.java:
//   request:  u32 magic 0x4B4C5153 ("SQLK"), u32 nameLength, name bytes,
//             u32 grid[3], u32 block[3], u32 dynamicSharedBytes,
//             u32 buffers, then per buffer: u64 size, bytes,
//             u32 params, then per param: u8 kind ('P' pointer, 'I' int32, 'L' int64, 'F' float32),
//                                         u64 value (for 'P': buffer index << 40 | byte offset)
//   answer:   u32 0 and every buffer's bytes again, in order; or u32 1, u32 length, an error message.
// A kernel whose parameter kinds differ from the request's is refused (the Java side and the kernel
// disagree on the signature: on a GPU that would be silent garbage).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <memory>

#include "sq_emu.h"

// AddressSanitizer finds out-of-bounds accesses, and its checks in the kernels' code, calls there
// (CudaEmulator's build), are how the memory order below sees each of their loads and stores.
#if !defined(__SANITIZE_ADDRESS__)
#error "the emulator needs -fsanitize=address (see CudaEmulator)"
#endif
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>

// __shared__ variables (sq_emu.h puts them in this section; weak: a build may have none).
extern "C" __attribute__((weak)) unsigned char __start_sq_shared[], __stop_sq_shared[];

namespace sq_emu {
ThreadState* current;
int trackedLane;

namespace {
struct Kernel {
  std::string signature;
  void (*invoke)(const std::vector<uint64_t>&);
};
std::map<std::string, Kernel>& kernels() {
  static std::map<std::string, Kernel> k;
  return k;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "cuda-emu: %s\n", what.c_str());
  std::fflush(stderr);
  std::_Exit(3);
}

enum class State { RUNNABLE, AT_BLOCK, AT_WARP, DONE };

// Switching fibers: a hand-written x86-64 switch (callee-saved registers and the stack pointer, ~20 ns)
// rather than swapcontext, which makes a system call per switch and made the emulator 100x slower.
extern "C" void sq_emu_switch(void** saveSp, void* loadSp);
asm(R"(
.text
.globl sq_emu_switch
.type sq_emu_switch,@function
sq_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size sq_emu_switch,.-sq_emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");

constexpr size_t STACK_BYTES = 256 << 10;

struct Fiber {
  ThreadState ts;
  void* sp = nullptr;  // saved stack pointer while switched out
  std::unique_ptr<char[]> stack;
  State state = State::RUNNABLE;
  bool commitAtRelease = false;  // waits at a barrier, not at a shuffle
  std::vector<std::pair<uintptr_t, size_t>> stores;  // since its last commit: address, bytes
  void* fakeStack = nullptr;  // AddressSanitizer's fiber bookkeeping
};

// Memory order. On a GPU a lane's plain stores reach the other lanes at no defined time before a
// __syncwarp, __syncthreads or fence: a shuffle synchronizes the lanes, not their memory. Here a store
// to device memory (the launch's buffers, __shared__ and dynamic shared memory) stays pending, seen by
// its own lane only, until a barrier releases the lane, it passes a fence, or the block ends (blocks run
// one after another; a lane's return orders nothing for the lanes still running). Every load and store
// of the kernels' code comes to access(): just before it, a byte with a pending store is made to hold
// what the accessing lane must see, the pending byte for the storing lane, the committed one for the
// others. Atomics go to memory directly (sq_emu.h).
struct ByteShadow {
  uint16_t lane;         // 1 + the thread whose store to the byte is pending; 0: none
  uint8_t other;         // of the committed byte and the pending one, the one memory does not hold
  uint8_t showsPending;  // memory holds the pending one
};
struct DeviceRange {
  uintptr_t begin, end;
  ByteShadow* shadow;
};

// One launch: the fibers of a block, the scheduler's context, the warp exchange slots.
struct Run {
  int threads = 0;
  std::vector<Fiber> fibers;
  std::vector<uint64_t> slots;  // [2][warp][32]: shuffles alternate between the two sets
  std::vector<long> tags;       // like slots: the depositing lane's shuffle count
  std::vector<long> shuffles;   // [thread]: shuffles so far in this block; the set is its parity
  std::vector<unsigned char> dynamicShared;
  std::vector<DeviceRange> device;  // the buffers, dynamic and static shared memory
  std::vector<std::unique_ptr<ByteShadow[]>> shadows;
  const DeviceRange* ranges = nullptr;  // device's, for access(), which calls nothing to find them
  size_t rangeCount = 0;
  void* schedulerSp = nullptr;
  void (*invoke)(const std::vector<uint64_t>&) = nullptr;
  const std::vector<uint64_t>* args = nullptr;
  Fiber* running = nullptr;
  unsigned launch = 0;  // launches served so far: seeds the thread order
  const void* schedulerStackBottom = nullptr;
  size_t schedulerStackSize = 0;
};
Run* run;
size_t asanScale, asanOffset;  // AddressSanitizer's shadow mapping
uintptr_t trackedStack;         // the stack of the thread trackedLane names

__attribute__((no_sanitize_address)) const DeviceRange* deviceRange(uintptr_t p) {
  for (size_t i = 0; i < run->rangeCount; i++) {
    if (p >= run->ranges[i].begin && p < run->ranges[i].end) {
      return &run->ranges[i];
    }
  }
  return nullptr;
}

// std::swap, which is instrumented: access() must call nothing that is.
__attribute__((no_sanitize_address)) void exchange(unsigned char& a, unsigned char& b) {
  unsigned char t = a;
  a = b;
  b = t;
}

__attribute__((no_sanitize_address)) bool poisoned(uintptr_t p) {
  return *reinterpret_cast<const signed char*>((p >> asanScale) + asanOffset) != 0;
}

// AddressSanitizer's check of the access, then the memory order's bookkeeping. Not instrumented itself,
// and with trackedLane 0 while it calls anything that is (library code may be a kernel file's copy), so
// it does not come here again.
__attribute__((no_sanitize_address)) void access(uintptr_t p, size_t n, bool write, void* pc, void* bp) {
  if (n == 0) {
    return;
  }
  // Up to 8 bytes span at most two shadow granules: both unpoisoned, the access is in bounds.
  bool mayBePoisoned = n > 8 || poisoned(p) || poisoned(p + n - 1);
  if (mayBePoisoned && __asan_region_is_poisoned(reinterpret_cast<void*>(p), n) != nullptr) {
    int sp;
    __asan_report_error(pc, bp, &sp, reinterpret_cast<void*>(p), write, n);
  }
  const int lane = trackedLane;
  const DeviceRange* r = lane == 0 || p - trackedStack < STACK_BYTES ? nullptr : deviceRange(p);
  if (r == nullptr) {
    return;
  }
  unsigned char* m = reinterpret_cast<unsigned char*>(p);
  ByteShadow* s = r->shadow + (p - r->begin);
  bool noted = false;
  for (size_t i = 0; i < n && p + i < r->end; i++) {
    if (s[i].lane == 0) {
      if (write) {
        s[i] = ByteShadow{static_cast<uint16_t>(lane), m[i], 1};
        noted = true;
      }
    } else if (s[i].lane == lane || write) {
      if (s[i].lane != lane) {
        // Two lanes store to this byte unordered: the other's store lands first, then this one's.
        s[i] = ByteShadow{static_cast<uint16_t>(lane), s[i].showsPending ? m[i] : s[i].other, 1};
        noted = true;
      } else if (!s[i].showsPending) {
        exchange(m[i], s[i].other);
        s[i].showsPending = 1;
      }
    } else if (s[i].showsPending) {
      exchange(m[i], s[i].other);
      s[i].showsPending = 0;
    }
  }
  if (noted) {
    trackedLane = 0;
    run->fibers[lane - 1].stores.emplace_back(p, n);
    trackedLane = lane;
  }
}

// f's pending stores reach memory for good; trackedLane is 0.
__attribute__((no_sanitize_address)) void commit(Fiber& f) {
  const int lane = f.ts.linear + 1;
  for (const auto& [p, n] : f.stores) {
    const DeviceRange* r = deviceRange(p);
    unsigned char* m = reinterpret_cast<unsigned char*>(p);
    ByteShadow* s = r->shadow + (p - r->begin);
    for (size_t i = 0; i < n && p + i < r->end; i++) {
      if (s[i].lane == lane) {
        if (!s[i].showsPending) {
          m[i] = s[i].other;
        }
        s[i] = ByteShadow{};
      }
    }
  }
  f.stores.clear();
}

#define SQ_ASAN_START(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define SQ_ASAN_FINISH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)

// Fiber side: give control back to the scheduler.
void yieldToScheduler() {
  Fiber* f = run->running;
  SQ_ASAN_START(&f->fakeStack, run->schedulerStackBottom, run->schedulerStackSize);
  sq_emu_switch(&f->sp, run->schedulerSp);
  SQ_ASAN_FINISH(f->fakeStack, nullptr, nullptr);
}

[[noreturn]] void fiberMain() {
  SQ_ASAN_FINISH(nullptr, &run->schedulerStackBottom, &run->schedulerStackSize);
  Fiber* f = run->running;
  run->invoke(*run->args);
  f->state = State::DONE;
  SQ_ASAN_START(nullptr, run->schedulerStackBottom, run->schedulerStackSize);  // this fiber's stack is not used again
  void* unused;
  sq_emu_switch(&unused, run->schedulerSp);
  __builtin_unreachable();
}

// Scheduler side: run fiber f until it blocks or ends.
void resume(Fiber* f) {
  run->running = f;
  current = &f->ts;
  void* save = nullptr;
  SQ_ASAN_START(&save, f->stack.get(), STACK_BYTES);
  trackedLane = f->ts.linear + 1;
  trackedStack = reinterpret_cast<uintptr_t>(f->stack.get());
  sq_emu_switch(&run->schedulerSp, f->sp);
  trackedLane = 0;
  SQ_ASAN_FINISH(save, &run->schedulerStackBottom, &run->schedulerStackSize);
}

// Until the scheduler releases this thread; a barrier (commits) then commits its stores.
void wait(State at, bool commits) {
  run->running->state = at;
  run->running->commitAtRelease = commits;
  yieldToScheduler();
}

void releaseFrom(Fiber& f) {
  f.state = State::RUNNABLE;
  if (f.commitAtRelease) {
    commit(f);
  }
}

// Releases the block barrier when every live thread waits at it, and each warp barrier when every live
// lane of the warp waits at it; true if any thread became runnable.
bool release() {
  bool any = false;
  int atBlock = 0;
  int done = 0;
  for (Fiber& f : run->fibers) {
    atBlock += f.state == State::AT_BLOCK;
    done += f.state == State::DONE;
  }
  if (atBlock > 0 && atBlock + done == run->threads && done > 0) {
    // Undefined on a GPU (it may hang or pass): every thread of the block must reach each __syncthreads.
    fail(std::to_string(done) + " threads returned while " + std::to_string(atBlock) +
         " wait at __syncthreads: deadlock or undefined behaviour on a GPU");
  }
  if (atBlock == run->threads) {
    for (Fiber& f : run->fibers) {
      releaseFrom(f);
    }
    return true;
  }
  for (int w = 0; w * 32 < run->threads; w++) {
    int end = std::min(run->threads, (w + 1) * 32);
    bool ready = true;
    bool anyAt = false;
    for (int t = w * 32; t < end; t++) {
      State s = run->fibers[t].state;
      anyAt |= s == State::AT_WARP;
      ready &= s == State::AT_WARP || s == State::DONE;
    }
    if (anyAt && ready) {
      for (int t = w * 32; t < end; t++) {
        if (run->fibers[t].state == State::AT_WARP) {
          releaseFrom(run->fibers[t]);
        }
      }
      any = true;
    }
  }
  return any;
}

void runBlock(uint3 blockIndex) {
  std::fill(run->shuffles.begin(), run->shuffles.end(), 0);
  std::fill(run->tags.begin(), run->tags.end(), -1);
  for (Fiber& f : run->fibers) {
    f.ts.bIdx = blockIndex;
    f.state = State::RUNNABLE;
    // A fresh stack that "returns" into fiberMain: six zeroed callee-saved registers, then the return
    // address at top - 16, so fiberMain starts with the stack aligned as after a call.
    // The previous block left this stack's frames (and their redzones) behind without returning.
    __asan_unpoison_memory_region(f.stack.get(), STACK_BYTES);
    uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack.get()) + STACK_BYTES) & ~uintptr_t{15};
    void** slot = reinterpret_cast<void**>(top - 16);
    slot[0] = reinterpret_cast<void*>(&fiberMain);
    slot[1] = nullptr;
    for (int i = 1; i <= 6; i++) {
      slot[-i] = nullptr;
    }
    f.sp = slot - 6;
  }
  // Runnable threads run in a shuffled order each round (seeded by launch, block and round, so a
  // failure reproduces): on a GPU the threads between two barriers run in any order and interleave, so a
  // kernel that reads shared or global memory another thread of its phase writes, without a barrier
  // between, gets different bytes in different rounds here and fails the differential tests.
  std::vector<int> order(run->fibers.size());
  for (size_t i = 0; i < order.size(); i++) {
    order[i] = static_cast<int>(i);
  }
  std::mt19937 shuffle(static_cast<unsigned>(run->launch * 1000003u + blockIndex.x * 7919u + blockIndex.y));
  for (;;) {
    bool ran = false;
    std::shuffle(order.begin(), order.end(), shuffle);
    for (int i : order) {
      Fiber& f = run->fibers[i];
      if (f.state == State::RUNNABLE) {
        resume(&f);
        ran = true;
      }
    }
    if (ran || release()) {
      continue;
    }
    int done = 0;
    int atBlock = 0;
    for (Fiber& f : run->fibers) {
      done += f.state == State::DONE;
      atBlock += f.state == State::AT_BLOCK;
    }
    if (done == run->threads) {
      for (Fiber& f : run->fibers) {
        commit(f);
      }
      return;
    }
    fail("deadlock in block (" + std::to_string(blockIndex.x) + "," + std::to_string(blockIndex.y) + "): " +
         std::to_string(atBlock) + " threads wait at __syncthreads, " + std::to_string(run->threads - done - atBlock) +
         " at a warp barrier or shuffle, " + std::to_string(done) + " have returned");
  }
}

int lanesIn(int warp) { return std::min(32, run->threads - warp * 32); }
}  // namespace

void registerKernel(const char* name, const std::string& signature, void (*invoke)(const std::vector<uint64_t>&)) {
  kernels()[name] = Kernel{signature, invoke};
}

void syncthreads() { wait(State::AT_BLOCK, true); }
void syncwarp() { wait(State::AT_WARP, true); }
void fence() {
  trackedLane = 0;
  commit(*run->running);
  trackedLane = run->running->ts.linear + 1;
}
unsigned char* dynamicShared() { return run->dynamicShared.data(); }

uint64_t exchange(uint64_t mine, int src) {
  int warp = current->linear / 32;
  int lane = current->linear & 31;
  if (src < 0 || src >= lanesIn(warp)) {
    fail("shuffle from lane " + std::to_string(src) + " outside the warp");
  }
  long count = ++run->shuffles[current->linear];
  size_t set = static_cast<size_t>(count & 1) * run->slots.size() / 2;
  // One barrier suffices: a lane can only write this set again two shuffles later, after every lane
  // has passed the next shuffle's barrier, and so has read this one.
  run->slots[set + warp * 32 + lane] = mine;
  run->tags[set + warp * 32 + lane] = count;
  wait(State::AT_WARP, false);
  if (run->tags[set + warp * 32 + src] != count) {
    fail("shuffle from lane " + std::to_string(src) + ", which exited or is not at the same shuffle, in block (" +
         std::to_string(current->bIdx.x) + "," + std::to_string(current->bIdx.y) + ")");
  }
  return run->slots[set + warp * 32 + src];
}
}  // namespace sq_emu

// AddressSanitizer's checks in the kernels' code (calls: CudaEmulator's build) land here, not in its runtime.
extern "C" {
#define SQ_EMU_ACCESS(kind, n, write)                                                  \
  __attribute__((no_sanitize_address)) void __asan_##kind##n(uintptr_t p) {             \
    sq_emu::access(p, n, write, __builtin_return_address(0), __builtin_frame_address(0)); \
  }
SQ_EMU_ACCESS(load, 1, false)
SQ_EMU_ACCESS(load, 2, false)
SQ_EMU_ACCESS(load, 4, false)
SQ_EMU_ACCESS(load, 8, false)
SQ_EMU_ACCESS(load, 16, false)
SQ_EMU_ACCESS(store, 1, true)
SQ_EMU_ACCESS(store, 2, true)
SQ_EMU_ACCESS(store, 4, true)
SQ_EMU_ACCESS(store, 8, true)
SQ_EMU_ACCESS(store, 16, true)
__attribute__((no_sanitize_address)) void __asan_loadN(uintptr_t p, size_t n) {
  sq_emu::access(p, n, false, __builtin_return_address(0), __builtin_frame_address(0));
}
__attribute__((no_sanitize_address)) void __asan_storeN(uintptr_t p, size_t n) {
  sq_emu::access(p, n, true, __builtin_return_address(0), __builtin_frame_address(0));
}
}

namespace {
using sq_emu::fail;

void readFully(void* p, size_t n) {
  if (n != 0 && std::fread(p, 1, n, stdin) != n) {
    std::exit(0);  // the Java side closed the pipe
  }
}
uint32_t u32() {
  uint32_t v;
  readFully(&v, 4);
  return v;
}
uint64_t u64() {
  uint64_t v;
  readFully(&v, 8);
  return v;
}

void writeAll(const void* p, size_t n) {
  if (n != 0 && std::fwrite(p, 1, n, stdout) != n) {
    std::exit(0);
  }
}

void answerError(const std::string& message) {
  uint32_t one = 1;
  uint32_t length = static_cast<uint32_t>(message.size());
  writeAll(&one, 4);
  writeAll(&length, 4);
  writeAll(message.data(), message.size());
  std::fflush(stdout);
}

void serve() {
  uint32_t magic = u32();
  if (magic != 0x4B4C5153u) {
    fail("bad request magic");
  }
  std::string name(u32(), '\0');
  readFully(name.data(), name.size());
  dim3 grid{u32(), u32(), u32()};
  dim3 block{u32(), u32(), u32()};
  uint32_t shared = u32();
  uint32_t nBuffers = u32();
  // Each buffer its own heap block of exactly its size, so AddressSanitizer sees every overrun.
  std::vector<std::unique_ptr<unsigned char[]>> buffers;
  std::vector<uint64_t> sizes;
  for (uint32_t i = 0; i < nBuffers; i++) {
    uint64_t size = u64();
    buffers.emplace_back(new unsigned char[size == 0 ? 1 : size]);
    sizes.push_back(size);
    readFully(buffers.back().get(), size);
  }
  uint32_t nParams = u32();
  std::string kinds;
  std::vector<uint64_t> args;
  std::string problem;
  for (uint32_t i = 0; i < nParams; i++) {
    char kind;
    readFully(&kind, 1);
    uint64_t value = u64();
    kinds.push_back(kind);
    if (kind == 'P') {
      uint64_t index = value >> 40;
      uint64_t offset = value & ((1ull << 40) - 1);
      if (index >= nBuffers || offset > sizes[index]) {
        problem = "parameter " + std::to_string(i) + " points outside its buffer";
      } else {
        value = reinterpret_cast<uintptr_t>(buffers[index].get() + offset);
      }
    }
    args.push_back(value);
  }
  auto found = sq_emu::kernels().find(name);
  if (found == sq_emu::kernels().end()) {
    problem = "no kernel named " + name;
  } else if (found->second.signature != kinds) {
    problem = "kernel " + name + " takes parameters " + found->second.signature + ", the launch passed " + kinds;
  }
  int threads = static_cast<int>(block.x * block.y * block.z);
  if (problem.empty() && (threads < 1 || threads > 1024 || grid.x * grid.y * grid.z == 0)) {
    problem = "bad launch shape for " + name;
  }
  if (!problem.empty()) {
    answerError(problem);
    return;
  }

  sq_emu::Run r;
  r.threads = threads;
  r.fibers.resize(static_cast<size_t>(threads));
  r.slots.assign(static_cast<size_t>((threads + 31) / 32) * 64, 0);
  r.tags.assign(r.slots.size(), -1);
  r.shuffles.assign(static_cast<size_t>(threads), 0);
  r.dynamicShared.assign(shared == 0 ? 1 : shared, 0xCD);  // not zero: kernels must not count on it
  auto device = [&r](void* begin, size_t size) {
    r.shadows.emplace_back(new sq_emu::ByteShadow[size]());
    uintptr_t b = reinterpret_cast<uintptr_t>(begin);
    r.device.push_back(sq_emu::DeviceRange{b, b + size, r.shadows.back().get()});
  };
  for (uint32_t i = 0; i < nBuffers; i++) {
    device(buffers[i].get(), sizes[i]);
  }
  device(r.dynamicShared.data(), r.dynamicShared.size());
  device(__start_sq_shared, static_cast<size_t>(__stop_sq_shared - __start_sq_shared));
  r.ranges = r.device.data();
  r.rangeCount = r.device.size();
  r.invoke = found->second.invoke;
  r.args = &args;
  for (int t = 0; t < threads; t++) {
    sq_emu::Fiber& f = r.fibers[t];
    f.stack.reset(new char[sq_emu::STACK_BYTES]);
    f.ts.linear = t;
    f.ts.tIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
    f.ts.bDim = block;
    f.ts.gDim = grid;
  }
  static unsigned launches = 0;
  r.launch = launches++;
  sq_emu::run = &r;
  for (unsigned z = 0; z < grid.z; z++) {
    for (unsigned y = 0; y < grid.y; y++) {
      for (unsigned x = 0; x < grid.x; x++) {
        sq_emu::runBlock({x, y, z});
      }
    }
  }
  sq_emu::run = nullptr;
  uint32_t zero = 0;
  writeAll(&zero, 4);
  for (uint32_t i = 0; i < nBuffers; i++) {
    writeAll(buffers[i].get(), sizes[i]);
  }
  std::fflush(stdout);
}
}  // namespace

int main() {
  __asan_get_shadow_mapping(&sq_emu::asanScale, &sq_emu::asanOffset);
  for (;;) {
    serve();
  }
}
