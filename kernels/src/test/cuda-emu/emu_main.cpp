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

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace sq_emu {
ThreadState* current;

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
  void* fakeStack = nullptr;  // AddressSanitizer's fiber bookkeeping
};

// One launch: the fibers of a block, the scheduler's context, the warp exchange slots.
struct Run {
  int threads = 0;
  std::vector<Fiber> fibers;
  std::vector<uint64_t> slots;  // [2][warp][32]: shuffles alternate between the two sets
  std::vector<long> tags;       // like slots: the depositing lane's shuffle count
  std::vector<long> shuffles;   // [thread]: shuffles so far in this block; the set is its parity
  std::vector<unsigned char> dynamicShared;
  void* schedulerSp = nullptr;
  void (*invoke)(const std::vector<uint64_t>&) = nullptr;
  const std::vector<uint64_t>* args = nullptr;
  Fiber* running = nullptr;
  unsigned launch = 0;  // launches served so far: seeds the thread order
  const void* schedulerStackBottom = nullptr;
  size_t schedulerStackSize = 0;
};
Run* run;

#if defined(__SANITIZE_ADDRESS__)
#define SQ_ASAN_START(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define SQ_ASAN_FINISH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define SQ_ASAN_START(save, bottom, size)
#define SQ_ASAN_FINISH(save, bottom, size)
#endif

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
  sq_emu_switch(&run->schedulerSp, f->sp);
  SQ_ASAN_FINISH(save, &run->schedulerStackBottom, &run->schedulerStackSize);
}

void wait(State at) {
  run->running->state = at;
  yieldToScheduler();
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
      if (f.state == State::AT_BLOCK) {
        f.state = State::RUNNABLE;
      }
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
          run->fibers[t].state = State::RUNNABLE;
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
#if defined(__SANITIZE_ADDRESS__)
    // The previous block left this stack's frames (and their redzones) behind without returning.
    __asan_unpoison_memory_region(f.stack.get(), STACK_BYTES);
#endif
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

void syncthreads() { wait(State::AT_BLOCK); }
void syncwarp() { wait(State::AT_WARP); }
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
  wait(State::AT_WARP);
  if (run->tags[set + warp * 32 + src] != count) {
    fail("shuffle from lane " + std::to_string(src) + ", which exited or is not at the same shuffle, in block (" +
         std::to_string(current->bIdx.x) + "," + std::to_string(current->bIdx.y) + ")");
  }
  return run->slots[set + warp * 32 + src];
}
}  // namespace sq_emu

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
  for (;;) {
    serve();
  }
}
