package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.List;
import shardquant.kernels.backend.reference.ReferenceBackend;
import shardquant.kernels.backend.simd.SimdDifferential;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.select.Backends;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * Runs the CUDA backend and the reference on the same rows and asserts equal parts (every byte) and
 * equal verification sums. The CUDA backend runs on two devices: the emulator (always: the kernels
 * compiled for the host, src/test/cuda-emu) and the GPU (skipped, with the probe's reason, where there
 * is none). Test methods take a {@link Target} from {@link #targets()}.
 */
public final class CudaDifferential {
  /** Where the CUDA backend runs. */
  public enum Target {
    EMULATED,
    GPU;

    /** The backend on this target; a GPU test is skipped (visibly, with the reason) where CUDA is unavailable. */
    public CudaBackend backend() {
      if (this == GPU) {
        assumeTrue(CudaProbe.available(), () -> "CUDA unavailable: " + CudaProbe.problem());
        return Backends.cuda(0, Backends.TASKS_PER_GPU);
      }
      return emulated();
    }

    /**
     * {@code w} on the GPU; on the emulator (thousands of times slower) its first {@value #EMULATED_ROWS}
     * rows, a whole number of every recipe's row units.
     */
    public Tensor sample(Tensor w) {
      return this == GPU || w.rows() <= EMULATED_ROWS ? w : w.rowSlice(0, EMULATED_ROWS);
    }
  }

  /** Rows of a large tensor the emulator runs ({@link Target#sample}). */
  public static final int EMULATED_ROWS = 128;

  private static EmulatedCudaDevice emulatedDevice;
  private static CudaBackend emulatedBackend;
  private static CudaBackend emulatedSmallChunks;

  private CudaDifferential() {}

  /** Both targets, for {@code @MethodSource}. */
  public static List<Target> targets() {
    return List.of(Target.EMULATED, Target.GPU);
  }

  /** The CUDA backend on the shared emulator process. */
  static synchronized CudaBackend emulated() {
    if (emulatedBackend == null) {
      emulatedDevice = new EmulatedCudaDevice();
      emulatedBackend = new CudaBackend(emulatedDevice, Backends.cpu(), 2);
    }
    return emulatedBackend;
  }

  /** The emulated backend uploading in 4 KiB chunks, so shards of a few rows take many double-buffered chunks. */
  static synchronized CudaBackend emulatedSmallChunks() {
    if (emulatedSmallChunks == null) {
      emulatedSmallChunks = new CudaBackend(emulatedDevice(), Backends.cpu(), 2, 4096);
    }
    return emulatedSmallChunks;
  }

  static synchronized EmulatedCudaDevice emulatedDevice() {
    emulated();
    return emulatedDevice;
  }

  /** The CUDA backend gives the reference's parts and stats for {@code rows}, and ran on its device. */
  public static void assertSameAsReference(CudaBackend cuda, Tensor rows, QuantConfig c, String what) {
    assertEquals("cuda", cuda.nameFor(c.recipe()), c + " has a CUDA kernel");
    QuantStats want = new QuantStats();
    QuantizedTensor ref = ReferenceBackend.INSTANCE.quantize(rows, c, GlobalStats.NONE, want);
    String where = c + " " + rows + " " + what + " on " + cuda;
    long before = cuda.cpuAnswers();
    QuantStats got = new QuantStats();
    QuantizedTensor q = cuda.quantize(rows, c, GlobalStats.NONE, got);
    assertRanOnDevice(cuda, before, rows, want, where);
    assertEquals(ref.parts().keySet(), q.parts().keySet(), where);
    ref.parts().forEach((name, t) -> SimdDifferential.assertBytes(t, q.part(name), where + " part " + name));
    assertEquals(want, got, where + " stats");
    assertEquals(want.nonFinite(), got.nonFinite(), where + " non-finite count");
    assertNoLeaks(cuda);
  }

  /** {@code b} gives the reference's parts and stats for {@code rows}, on whichever device it chose. */
  public static void assertSameAsCpu(CudaBackend b, Tensor rows, QuantConfig c) {
    QuantStats want = new QuantStats();
    QuantizedTensor ref = ReferenceBackend.INSTANCE.quantize(rows, c, GlobalStats.NONE, want);
    QuantStats got = new QuantStats();
    QuantizedTensor q = b.quantize(rows, c, GlobalStats.NONE, got);
    assertEquals(List.copyOf(ref.parts().keySet()), List.copyOf(q.parts().keySet()), c + " part names, in torchao's order");
    ref.parts().forEach((name, t) -> SimdDifferential.assertBytes(t, q.part(name), c + " part " + name));
    assertEquals(want, got, c + " stats");
  }

  /** Both backends refuse {@code rows} with the same message, and the CUDA one leaves the stats alone. */
  public static void assertSameRefusal(CudaBackend cuda, Tensor rows, QuantConfig c) {
    IllegalArgumentException want = assertThrows(IllegalArgumentException.class,
        () -> ReferenceBackend.INSTANCE.quantize(rows, c, GlobalStats.NONE, new QuantStats()));
    QuantStats stats = new QuantStats();
    IllegalArgumentException got = assertThrows(IllegalArgumentException.class,
        () -> cuda.quantize(rows, c, GlobalStats.NONE, stats));
    assertEquals(want.getMessage(), got.getMessage());
    assertEquals(new QuantStats(), stats);
    assertNoLeaks(cuda);
  }

  /**
   * Everything {@code cuda} answered since it had given {@code cpuAnswersBefore} answers from the CPU ran
   * on its device from start to end: no device failure, no answer from the CPU.
   */
  static void assertRanOnDevice(CudaBackend cuda, long cpuAnswersBefore, String where) {
    assertNull(cuda.failure(), where + ": the device failed, the CPU answered");
    assertEquals(cpuAnswersBefore, cuda.cpuAnswers(), where + ": the CPU answered (the kernels did not take the shard or flagged it)");
  }

  /**
   * {@link #assertRanOnDevice(CudaBackend, long, String)} for quantizing {@code rows}, whose reference
   * stats are {@code want}; but of a shard the backend may hand to the CPU by design, an empty one or one
   * whose sums meet a non-finite value (int8 and intx send those to the CPU), only that the device did
   * not fail.
   */
  static void assertRanOnDevice(CudaBackend cuda, long cpuAnswersBefore, Tensor rows, QuantStats want, String where) {
    if (rows.rows() == 0 || want.nonFinite() > 0) {
      assertNull(cuda.failure(), where + ": the device failed");
    } else {
      assertRanOnDevice(cuda, cpuAnswersBefore, where);
    }
  }

  /** Kernel launches on the emulated device so far, or -1 on a GPU (not counted there). */
  static long launches(CudaBackend cuda) {
    return cuda.device() instanceof EmulatedCudaDevice e ? e.launches() : -1;
  }

  static void assertNoLeaks(CudaBackend cuda) {
    if (cuda.device() instanceof EmulatedCudaDevice e) {
      assertEquals(0, e.liveAllocations(), "device allocations left open");
    }
  }
}
