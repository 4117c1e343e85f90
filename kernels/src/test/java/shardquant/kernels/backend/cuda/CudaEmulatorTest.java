package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The emulator the CUDA tests rely on (src/test/cuda-emu, kernels in emu_selftest.cu): barriers and
 * warp shuffles compute what a GPU computes, a lane's stores reach the other lanes no sooner than on a
 * GPU (at a barrier or fence, not at a shuffle), and what would corrupt memory or hang on a GPU (a write
 * past a buffer, a barrier some threads skip, a shuffle from an exited lane, a launch whose arguments
 * do not match the kernel) fails with a message saying so.
 */
class CudaEmulatorTest {
  private static final EmulatedCudaDevice DEV = new EmulatedCudaDevice();

  @AfterAll
  static void stop() {
    DEV.close();
  }

  private static int[] run(String kernel, int grid, int block, int n, Object... more) {
    try (CudaDevice.Memory out = DEV.alloc(4L * n); CudaDevice.Stream s = DEV.stream();
        CudaDevice.Pinned host = DEV.allocPinned(4L * n)) {
      Object[] args = new Object[1 + more.length];
      args[0] = out;
      System.arraycopy(more, 0, args, 1, more.length);
      DEV.launch(s, kernel, grid, block, 0, args);
      DEV.copyToHost(out.at(0), host, 0, 4L * n, s);
      DEV.synchronize(s);
      int[] v = new int[n];
      ByteBuffer b = host.buffer().duplicate().order(java.nio.ByteOrder.LITTLE_ENDIAN);
      b.asIntBuffer().get(v);
      return v;
    }
  }

  @Test
  void barriersAndShufflesComputeWhatAGpuDoes() {
    int block = 96; // three warps
    int[] got = run("emu_reduce", 2, block, 2 * block);
    int total = block * (block + 1) / 2;
    for (int b = 0; b < 2; b++) {
      for (int t = 0; t < block; t++) {
        int warp = t / 32;
        int warpSum = 0;
        for (int l = 0; l < 32; l++) {
          warpSum += warp * 32 + l + 1;
        }
        assertEquals(warpSum * 100000 + total, got[b * block + t], "block " + b + " thread " + t);
      }
    }
  }

  @Test
  void aLanesStoresReachTheOtherLanesAtABarrierOrFenceNotAtAShuffle() {
    String[] orderings = {"a shuffle", "__syncwarp", "__syncthreads", "__threadfence", "__threadfence_block"};
    for (int o = 0; o < orderings.length; o++) {
      int[] got = run("emu_memory_order", 1, 32, 128, o);
      for (int t = 0; t < 32; t++) {
        int next = (t + 1) % 32;
        String where = "after " + orderings[o] + ", lane " + t;
        assertEquals((t + 1) * 1000 + t + 101, got[32 + t], where + " reads its own stores");
        assertEquals(o == 0 ? -1 : next + 1, got[64 + t], where + " reads lane " + next + "'s shared store");
        assertEquals(o == 0 ? -1 : next + 101, got[96 + t], where + " reads lane " + next + "'s global store");
        assertEquals(t + 101, got[t], "every store is in memory when the kernel ends");
      }
    }
  }

  @Test
  void aWritePastTheBufferFails() {
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> run("emu_overrun", 1, 32, 8, 8));
    assertTrue(e.getMessage().contains("heap-buffer-overflow"), e.getMessage());
  }

  @Test
  void aBarrierSomeThreadsSkipIsADeadlock() {
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> run("emu_divergent_barrier", 1, 64, 64));
    assertTrue(e.getMessage().contains("deadlock"), e.getMessage());
  }

  @Test
  void aShuffleFromAnExitedLaneFails() {
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> run("emu_shuffle_exited", 1, 32, 32));
    assertTrue(e.getMessage().contains("exited"), e.getMessage());
  }

  @Test
  void argumentsThatDoNotMatchTheKernelAreRefused() {
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> run("emu_overrun", 1, 32, 8, 8L));
    assertTrue(e.getMessage().contains("takes parameters PI, the launch passed PL"), e.getMessage());
    // the emulator goes on serving after a refused launch
    assertEquals(32, run("emu_reduce", 1, 32, 32).length);
  }

  @Test
  void anUnknownKernelIsRefused() {
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> run("no_such_kernel", 1, 32, 8));
    assertTrue(e.getMessage().contains("no kernel named no_such_kernel"), e.getMessage());
  }
}
