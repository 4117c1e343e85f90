package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import shardquant.kernels.backend.reference.ReferenceBackend;
import shardquant.kernels.backend.simd.SimdDifferential;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.Nf4Ref;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.select.Backends;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * NF4's first pass keeps its uploaded shard on the device for the second ({@link ResidentInputs}), on
 * the emulator: a shard the job marked with an origin is uploaded once for both passes where it fits
 * the budget, twice otherwise (too big, no origin), with the reference's absmax, bytes and stats
 * either way; stale entries (another job's, a released job's) are freed; nothing leaks.
 */
class CudaResidentInputsTest {
  private static final QuantConfig NF4 = QuantConfig.of(Recipe.NF4);
  /** 64 rows of 256 bf16 (32 KiB) in 8 KiB chunks: the resident path runs chunk by chunk too. */
  private static final int ROWS = 64;
  private static final int COLS = 256;
  private static final long SHARD = 2L * ROWS * COLS;
  private static final long CHUNK = 8192;
  /** NF4's parameters (thresholds and table), uploaded by every second pass. */
  private static final long PARAMS = 4 * 32;

  private static EmulatedCudaDevice dev;

  @BeforeAll
  static void start() {
    dev = new EmulatedCudaDevice();
  }

  @AfterAll
  static void stop() {
    dev.close();
  }

  private static CudaBackend backend(long residentBytes) {
    return new CudaBackend(dev, Backends.cpu(), 2, CHUNK, residentBytes);
  }

  private static Tensor shard(int seed, String job) {
    Tensor t = SimdDifferential.random(DType.BF16, ROWS, COLS, new Random(seed));
    return job == null ? t : t.withOrigin(new Tensor.Origin(job, "model.safetensors@" + seed));
  }

  /** The first pass: the reference's absmax, on the device. */
  private static float firstPass(CudaBackend cuda, Tensor w) {
    long cpu = cuda.cpuAnswers();
    float[] got = cuda.firstPass(NF4, w);
    assertEquals(cpu, cuda.cpuAnswers(), "the first pass ran on the CPU");
    assertArrayEquals(Nf4Ref.blockAbsmax(w), got, "block absmax");
    return Nf4Ref.scalerMean(w.dtype(), got);
  }

  /** The second pass: the reference's parts and stats, on the device. */
  private static void secondPass(CudaBackend cuda, Tensor w, float mean) {
    GlobalStats global = new GlobalStats(mean);
    QuantStats want = new QuantStats();
    QuantizedTensor ref = ReferenceBackend.INSTANCE.quantize(w, NF4, global, want);
    long cpu = cuda.cpuAnswers();
    QuantStats got = new QuantStats();
    QuantizedTensor q = cuda.quantize(w, NF4, global, got);
    assertEquals(cpu, cuda.cpuAnswers(), "the second pass ran on the CPU");
    assertEquals(List.copyOf(ref.parts().keySet()), List.copyOf(q.parts().keySet()));
    ref.parts().forEach((name, t) -> SimdDifferential.assertBytes(t, q.part(name), "part " + name));
    assertEquals(want, got, "stats");
  }

  /** Both passes of {@code w}; returns the bytes they uploaded. */
  private static long bothPasses(CudaBackend cuda, Tensor w) {
    long before = dev.uploadedBytes();
    secondPass(cuda, w, firstPass(cuda, w));
    return dev.uploadedBytes() - before;
  }

  @Test
  void aMarkedShardIsUploadedOnceForBothPasses() {
    CudaBackend cuda = backend(SHARD);
    assertEquals(SHARD + PARAMS, bothPasses(cuda, shard(1, "job-a")));
    assertEquals(1, cuda.resident().hits());
    assertEquals(0, cuda.resident().size());
    CudaDifferential.assertNoLeaks(cuda);
  }

  @Test
  void aShardOverTheBudgetIsUploadedTwice() {
    CudaBackend cuda = backend(SHARD - 1);
    assertEquals(2 * SHARD + PARAMS, bothPasses(cuda, shard(2, "job-a")));
    assertEquals(0, cuda.resident().offered());
    CudaDifferential.assertNoLeaks(cuda);
  }

  @Test
  void anUnmarkedShardIsUploadedTwice() {
    CudaBackend cuda = backend(1L << 30);
    assertEquals(2 * SHARD + PARAMS, bothPasses(cuda, shard(3, null)));
    assertEquals(0, cuda.resident().offered());
    CudaDifferential.assertNoLeaks(cuda);
  }

  @Test
  void theFirstShardsThatFitAreKeptAndLaterOnesUploadedAgain() {
    CudaBackend cuda = backend(2 * SHARD); // room for two of three
    Tensor[] w = {shard(4, "job-a"), shard(5, "job-a"), shard(6, "job-a")};
    float[] means = new float[w.length];
    long before = dev.uploadedBytes();
    for (int i = 0; i < w.length; i++) { // every first pass before any second, as the job runs them
      means[i] = firstPass(cuda, w[i]);
    }
    assertEquals(2, cuda.resident().size());
    for (int i = w.length - 1; i >= 0; i--) {
      secondPass(cuda, w[i], means[i]);
    }
    assertEquals(3 * SHARD + SHARD + 3 * PARAMS, dev.uploadedBytes() - before, "only the third shard uploaded twice");
    assertEquals(2, cuda.resident().hits());
    CudaDifferential.assertNoLeaks(cuda);
  }

  @Test
  void staleShardsAreFreed() {
    CudaBackend cuda = backend(4 * SHARD);
    firstPass(cuda, shard(7, "job-a"));
    firstPass(cuda, shard(8, "job-a"));
    assertEquals(2, cuda.resident().size());
    assertEquals(2, dev.liveAllocations(), "the kept inputs");
    // a new job's first shard frees the old job's (their second passes ran elsewhere, or the job failed)
    Tensor b = shard(7, "job-b");
    firstPass(cuda, b);
    assertEquals(1, cuda.resident().size());
    assertEquals(1, dev.liveAllocations());
    assertEquals(1, cuda.releaseResident("job-b"));
    assertEquals(0, cuda.resident().used());
    CudaDifferential.assertNoLeaks(cuda);
    // released: its second pass uploads again, with the same bytes
    long before = dev.uploadedBytes();
    secondPass(cuda, b, Nf4Ref.scalerMean(b.dtype(), Nf4Ref.blockAbsmax(b)));
    assertEquals(SHARD + PARAMS, dev.uploadedBytes() - before);
    CudaDifferential.assertNoLeaks(cuda);
  }

  @Test
  void aKeptShardIsTakenOnlyByTheSameSourceDtypeAndShape() {
    CudaBackend cuda = backend(4 * SHARD);
    Tensor w = shard(9, "job-a");
    firstPass(cuda, w);
    // same origin, other shape: not the same shard (the job's sources name bytes, the key adds the shape)
    Tensor reshaped = w.reshape(ROWS / 2, COLS * 2).withOrigin(w.origin());
    assertEquals(null, cuda.resident().take(reshaped));
    assertEquals(1, cuda.resident().size());
    assertFalse(cuda.resident().used() == 0);
    cuda.releaseResident(null);
    CudaDifferential.assertNoLeaks(cuda);
  }
}
