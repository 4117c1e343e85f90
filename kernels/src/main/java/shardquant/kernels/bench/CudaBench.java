package shardquant.kernels.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import shardquant.kernels.select.Backends;
import shardquant.kernels.backend.cuda.CudaBackend;
import shardquant.kernels.backend.cuda.CudaDevice;
import shardquant.kernels.backend.cuda.JCudaDevice;
import shardquant.kernels.bench.KernelBench.Shard;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;

/**
 * The CUDA figures of {@code bench --backend cuda}: kernel-only GB/s (CUDA events around every launch,
 * summed), end-to-end GB/s from host memory (the {@code quantize} calls the job makes: pinned staging,
 * uploads, kernels, downloads) with the shards one after another and with as many at once as the GPU
 * takes (the job's tasks per GPU), each over pinned host-to-device bandwidth measured in the same run;
 * then each kernel's launch configurations with its registers and local memory from the loaded module.
 * {@link KernelBench#run} adds them on the CUDA backend; {@link #main} runs that without Spark, for a
 * GPU machine that has only the kernels module's classpath (.device/, see src/main/cuda/README.md).
 */
public final class CudaBench {
  private CudaBench() {}

  /**
   * {@code bench <recipe> cuda kernels: X GB/s input} (only where CUDA events timed the kernels: NaN
   * seconds otherwise) and {@code bench <recipe> cuda from host: Y GB/s input, R of pinned H2D (B GB/s)}.
   */
  public record Figures(String recipe, long bytes, double kernelSeconds, long endToEndNanos, int tasks, long concurrentNanos,
      double h2dBytesPerSecond, List<String> launches) {
    public double endToEndBytesPerSecond() {
      return bytes * 1e9 / Math.max(1, endToEndNanos);
    }

    /**
     * {@link #lines}, then {@code bench <recipe> cuda from host, T tasks at once: Y GB/s input, R of pinned
     * H2D} and the launch lines ({@link LaunchLog#lines}).
     */
    public List<String> report() {
      List<String> out = new ArrayList<>(lines());
      double concurrent = bytes * 1e9 / Math.max(1, concurrentNanos);
      out.add(String.format(Locale.ROOT, "bench %s cuda from host, %d tasks at once: %s GB/s input, %s of pinned H2D", recipe,
          tasks, KernelBench.digits3(concurrent / 1e9), KernelBench.digits3(concurrent / h2dBytesPerSecond)));
      out.addAll(launches);
      return out;
    }

    public List<String> lines() {
      List<String> out = new ArrayList<>();
      if (!Double.isNaN(kernelSeconds)) {
        out.add(String.format(Locale.ROOT, "bench %s cuda kernels: %s GB/s input (GPU time of the kernels alone)", recipe,
            KernelBench.digits3(bytes / kernelSeconds / 1e9)));
      }
      double endToEnd = endToEndBytesPerSecond();
      out.add(String.format(Locale.ROOT, "bench %s cuda from host: %s GB/s input, %s of pinned H2D (%s GB/s)", recipe,
          KernelBench.digits3(endToEnd / 1e9), KernelBench.digits3(endToEnd / h2dBytesPerSecond),
          KernelBench.digits3(h2dBytesPerSecond / 1e9)));
      return out;
    }
  }

  /** Measures {@code shards} of {@code c} (with their global statistics) on {@code cuda}. */
  public static Figures measure(String recipe, List<Shard> shards, QuantConfig c, CudaBackend cuda) {
    long bytes = shards.stream().mapToLong(s -> s.rows().byteSize()).sum();
    long elements = KernelBench.elements(shards);
    double h2d = pinnedUploadRate(cuda.device(), Math.min(bytes, 256L << 20));
    JCudaDevice timer = cuda.device() instanceof JCudaDevice j ? j : null;
    long bestEndToEnd = Long.MAX_VALUE;
    double bestKernels = Double.MAX_VALUE;
    LaunchLog log = new LaunchLog(cuda.device());
    quantizeAll(shards, c, cuda.on(log), elements); // warm-up (module load, JIT, allocation caches), recording launches
    for (int i = 0; i < KernelBench.REPETITIONS; i++) {
      if (timer != null) {
        timer.takeKernelSeconds();
        timer.timeKernels(true);
      }
      long t0 = System.nanoTime();
      quantizeAll(shards, c, cuda, elements);
      bestEndToEnd = Math.min(bestEndToEnd, System.nanoTime() - t0);
      if (timer != null) {
        timer.timeKernels(false);
        bestKernels = Math.min(bestKernels, timer.takeKernelSeconds());
      }
    }
    int tasks = cuda.tasksPerGpu();
    long bestConcurrent = Long.MAX_VALUE;
    ExecutorService pool = Executors.newFixedThreadPool(tasks);
    try {
      for (int i = 0; i < KernelBench.REPETITIONS; i++) {
        bestConcurrent = Math.min(bestConcurrent, concurrently(shards, c, cuda, elements, tasks, pool));
      }
    } finally {
      pool.shutdownNow();
    }
    return new Figures(recipe, bytes, timer == null ? Double.NaN : bestKernels, bestEndToEnd, tasks, bestConcurrent, h2d,
        log.lines(recipe));
  }

  /** Nanoseconds for {@code tasks} threads taking the next shard until none is left, as the job's tasks do. */
  private static long concurrently(List<Shard> shards, QuantConfig c, CudaBackend cuda, long elements, int tasks,
      ExecutorService pool) {
    AtomicInteger next = new AtomicInteger();
    long t0 = System.nanoTime();
    List<Future<Long>> parts = new ArrayList<>();
    for (int t = 0; t < tasks; t++) {
      parts.add(pool.submit(() -> KernelBench.quantize(shards, next, c, cuda)));
    }
    long done = 0;
    for (Future<Long> f : parts) {
      try {
        done += f.get();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      } catch (ExecutionException e) {
        throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
      }
    }
    long nanos = System.nanoTime() - t0;
    KernelBench.checkAll(elements, done);
    return nanos;
  }

  private static void quantizeAll(List<Shard> shards, QuantConfig c, CudaBackend cuda, long elements) {
    KernelBench.checkAll(elements, KernelBench.quantize(shards, new AtomicInteger(), c, cuda));
  }

  /** Host-to-device bandwidth from pinned memory: best of {@value KernelBench#REPETITIONS} copies of {@code bytes}. */
  static double pinnedUploadRate(CudaDevice dev, long bytes) {
    try (CudaDevice.Pinned host = dev.allocPinned(bytes); CudaDevice.Memory target = dev.alloc(bytes);
        CudaDevice.Stream s = dev.stream()) {
      dev.copyToDevice(host, 0, target.at(0), bytes, s);
      dev.synchronize(s);
      long best = Long.MAX_VALUE;
      for (int i = 0; i < KernelBench.REPETITIONS; i++) {
        long t0 = System.nanoTime();
        dev.copyToDevice(host, 0, target.at(0), bytes, s);
        dev.synchronize(s);
        best = Math.min(best, System.nanoTime() - t0);
      }
      return bytes * 1e9 / Math.max(1, best);
    }
  }

  /**
   * Without Spark: {@code java -cp KERNELS_CP shardquant.kernels.bench.CudaBench [recipe ...]} measures
   * Llama-3-8B's layer (7 bf16 matrices, 436 MB) in 64 MiB row shards on CUDA device 0: per recipe the
   * lines of {@code bench --backend cuda} (its memcpy line, then the CUDA figures and launch lines).
   */
  public static void main(String[] args) {
    CudaBackend cuda = (CudaBackend) Backends.forName("cuda");
    System.out.println("bench: " + cuda + (cuda.cpuOnly().isEmpty() ? "" : "; on the CPU: " + cuda.cpuOnly()));
    List<Recipe> recipes = new ArrayList<>();
    for (String a : args) {
      recipes.add(Recipe.fromCliName(a));
    }
    if (recipes.isEmpty()) {
      recipes.addAll(List.of(Recipe.values()));
    }
    List<Recipe> withKernel = new ArrayList<>();
    for (Recipe r : recipes) {
      if (cuda.nameFor(r).equals(cuda.name())) {
        withKernel.add(r);
      } else {
        System.out.println("bench " + r.cliName() + " cuda: no CUDA kernel, skipped");
      }
    }
    new KernelBench(KernelBench.HIDDEN, 64L << 20).run(withKernel, List.of(cuda), 1, System.out::println);
  }
}
