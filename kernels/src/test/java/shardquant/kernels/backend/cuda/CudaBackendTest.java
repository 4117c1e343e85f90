package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import shardquant.kernels.backend.simd.SimdDifferential;
import shardquant.kernels.bench.CudaBench;
import shardquant.kernels.bench.KernelBench;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.select.Backends;
import shardquant.kernels.tensor.Tensor;

/** The backend around the kernels: the self-check that keeps a wrong kernel off, and the per-GPU task limit. */
class CudaBackendTest {
  @Test
  void theSelfCheckPassesOnTheEmulator() {
    CudaBackend b = new CudaBackend(CudaDifferential.emulatedDevice(), Backends.cpu(), 2);
    assertEquals(Map.of(), b.selfCheck(Backends.cpu()));
    assertTrue(CudaDifferential.launches(b) > 0);
    assertEquals("cuda", b.nameFor(Recipe.INT8_WEIGHT_ONLY));
    assertFalse(b.cpuOnly().stream().anyMatch(s -> s.contains("self-check")), b.cpuOnly().toString());
  }

  @Test
  void aDeviceThatCorruptsResultsLosesEveryRecipeToTheCpu() {
    CudaBackend b = new CudaBackend(new CorruptingDevice(CudaDifferential.emulatedDevice()), Backends.cpu(), 2);
    Map<Recipe, String> off = b.selfCheck(Backends.cpu());
    assertTrue(off.containsKey(Recipe.INT8_WEIGHT_ONLY), off.toString());
    assertTrue(off.get(Recipe.INT8_WEIGHT_ONLY).contains("differ"), off.toString());
    assertEquals(Backends.cpu().name(), b.nameFor(Recipe.INT8_WEIGHT_ONLY));
    assertTrue(b.cpuOnly().contains("int8-weight-only (self-check failed)"), b.cpuOnly().toString());
    // and what it then quantizes is the CPU's, right
    CudaDifferential.assertSameAsCpu(b, SimdDifferential.random(DType.BF16, 3, 64, new Random(1)), QuantConfig.of(Recipe.INT8_WEIGHT_ONLY));
  }

  @Test
  void atMostTasksPerGpuShardsAreOnTheDeviceAtOnce() throws Exception {
    for (int limit : new int[] {1, 2}) {
      CountingDevice dev = new CountingDevice(CudaDifferential.emulatedDevice());
      CudaBackend b = new CudaBackend(dev, Backends.cpu(), limit);
      ExecutorService pool = Executors.newFixedThreadPool(4);
      try {
        List<Future<?>> done = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
          int seed = t;
          done.add(pool.submit(() -> CudaDifferential.assertSameAsCpu(b,
              SimdDifferential.random(DType.BF16, 16, 200, new Random(seed)), QuantConfig.of(Recipe.INT8_WEIGHT_ONLY))));
        }
        for (Future<?> f : done) {
          f.get();
        }
      } finally {
        pool.shutdown();
      }
      CudaDifferential.assertNoLeaks(b);
      // each shard holds two streams
      assertTrue(dev.maxStreams.get() <= 2 * limit, "limit " + limit + ": " + dev.maxStreams.get() + " streams at once");
      assertTrue(dev.maxStreams.get() >= 2, "no shard ran");
    }
  }

  @Test
  void benchPrintsTheFromHostLineAndItsRatioToPinnedUploads() {
    java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
    CudaBackend b = CudaDifferential.emulated();
    Tensor shard = SimdDifferential.random(DType.BF16, 8, 256, new Random(3));
    java.io.PrintStream out = new java.io.PrintStream(bytes, true);
    CudaBench.measure("int8-weight-only", List.of(new KernelBench.Shard(shard, shardquant.kernels.quant.GlobalStats.NONE)),
        QuantConfig.of(Recipe.INT8_WEIGHT_ONLY), b).lines().forEach(out::println);
    String printed = bytes.toString();
    assertTrue(printed.matches("bench int8-weight-only cuda from host: [0-9.]+ GB/s input, [0-9.]+ of pinned H2D \\([0-9.]+ GB/s\\)\\R"),
        printed);
  }

  @Test
  void benchPrintsTheConcurrentFigureAndEveryKernelsLaunchConfiguration() {
    CudaBackend b = CudaDifferential.emulated();
    List<KernelBench.Shard> shards = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      shards.add(new KernelBench.Shard(SimdDifferential.random(DType.BF16, 8, 256, new Random(10 + i)),
          shardquant.kernels.quant.GlobalStats.NONE));
    }
    List<String> lines = CudaBench.measure("int8-weight-only", shards, QuantConfig.of(Recipe.INT8_WEIGHT_ONLY), b).report();
    assertEquals(3, lines.size(), lines.toString());
    assertTrue(lines.get(0).startsWith("bench int8-weight-only cuda from host: "), lines.toString());
    assertTrue(lines.get(1).matches("bench int8-weight-only cuda from host, 2 tasks at once: [0-9.]+ GB/s input, [0-9.]+ of pinned H2D"),
        lines.get(1));
    assertTrue(lines.get(2).matches("bench int8-weight-only cuda launch int8_rowwise: grid [0-9]+, block [0-9]+, [0-9]+ B dynamic shared "
        + "\\([0-9]+ launches\\); registers and local memory not known on CUDA emulator .*"), lines.get(2));
  }

  @Test
  void aDeviceFailureMidShardFallsBackToTheCpuOnceAndForAll() {
    FailingDevice dev = new FailingDevice(CudaDifferential.emulatedDevice(), 2);
    CudaBackend b = new CudaBackend(dev, Backends.cpu(), 2);
    QuantConfig c = QuantConfig.of(Recipe.INT8_WEIGHT_ONLY);
    // the second download (qdata, after the stats were read) fails: the CPU's result, stats counted once
    CudaDifferential.assertSameAsCpu(b, SimdDifferential.random(DType.BF16, 5, 300, new Random(4)), c);
    assertTrue(b.failure() != null && b.failure().contains("simulated device fault"), b.failure());
    assertEquals(Backends.cpu().name(), b.nameFor(Recipe.INT8_WEIGHT_ONLY));
    long launches = CudaDifferential.launches(CudaDifferential.emulated()); // the device under the failing one
    CudaDifferential.assertSameAsCpu(b, SimdDifferential.random(DType.F16, 3, 100, new Random(5)), c);
    assertEquals(launches, CudaDifferential.launches(CudaDifferential.emulated()), "the failed GPU was used again");
    CudaDifferential.assertNoLeaks(CudaDifferential.emulated());
  }

  /** Throws, like a faulted context, from the {@code failAt}-th copy to the host on. */
  private static final class FailingDevice extends ForwardingDevice {
    private final int failAt;
    private int copies;

    FailingDevice(CudaDevice d, int failAt) {
      super(d);
      this.failAt = failAt;
    }

    @Override
    public void copyToHost(Ptr src, Pinned dst, long dstOffset, long bytes, Stream s) {
      if (++copies >= failAt) {
        throw new IllegalStateException("simulated device fault");
      }
      super.copyToHost(src, dst, dstOffset, bytes, s);
    }
  }

  /** Flips the first byte of everything copied back to the host. */
  private static final class CorruptingDevice extends ForwardingDevice {
    CorruptingDevice(CudaDevice d) {
      super(d);
    }

    @Override
    public void copyToHost(Ptr src, Pinned dst, long dstOffset, long bytes, Stream s) {
      super.copyToHost(src, dst, dstOffset, bytes, s);
      pending.add(() -> dst.buffer().put((int) dstOffset, (byte) (dst.buffer().get((int) dstOffset) ^ 1)));
    }

    private final List<Runnable> pending = new ArrayList<>();

    @Override
    public void synchronize(Stream s) {
      super.synchronize(s);
      pending.forEach(Runnable::run);
      pending.clear();
    }
  }

  /** Counts streams open at once. */
  private static final class CountingDevice extends ForwardingDevice {
    final AtomicInteger open = new AtomicInteger();
    final AtomicInteger maxStreams = new AtomicInteger();

    CountingDevice(CudaDevice d) {
      super(d);
    }

    @Override
    public Stream stream() {
      Stream s = super.stream();
      maxStreams.accumulateAndGet(open.incrementAndGet(), Math::max);
      Stream w = () -> {
        open.decrementAndGet();
        s.close();
      };
      wrapped.put(w, s);
      return w;
    }

    @Override
    public void synchronize(Stream s) {
      super.synchronize(inner(s));
    }

    @Override
    public void copyToDevice(Pinned src, long srcOffset, Ptr dst, long bytes, Stream s) {
      super.copyToDevice(src, srcOffset, dst, bytes, inner(s));
    }

    @Override
    public void copyToHost(Ptr src, Pinned dst, long dstOffset, long bytes, Stream s) {
      super.copyToHost(src, dst, dstOffset, bytes, inner(s));
    }

    @Override
    public void launch(Stream s, String kernel, int gridX, int blockX, int shared, Object... args) {
      super.launch(inner(s), kernel, gridX, blockX, shared, args);
    }

    @Override
    public void record(Event e, Stream s) {
      super.record(e, inner(s));
    }

    @Override
    public void waitEvent(Stream s, Event e) {
      super.waitEvent(inner(s), e);
    }

    private final Map<Stream, Stream> wrapped = new java.util.concurrent.ConcurrentHashMap<>();

    private Stream inner(Stream s) {
      return wrapped.getOrDefault(s, s);
    }
  }

  /** A device that forwards every call. */
  private static class ForwardingDevice extends ForwardingCudaDevice {
    private final CudaDevice d;

    ForwardingDevice(CudaDevice d) {
      super(d);
      this.d = d;
    }

    @Override
    public String description() {
      return "forwarding to " + d.description();
    }
  }
}
