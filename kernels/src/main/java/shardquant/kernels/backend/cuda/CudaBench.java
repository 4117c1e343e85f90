package shardquant.kernels.backend.cuda;

import java.io.PrintStream;
import java.math.BigDecimal;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.Nf4Ref;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.RecipeKernel;
import shardquant.kernels.select.Backends;
import shardquant.kernels.tensor.SyntheticWeights;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * The CUDA figures of {@code bench --backend cuda}: kernel-only GB/s (CUDA events around every launch,
 * summed), end-to-end GB/s from host memory (the {@code quantize} calls the job makes: pinned staging,
 * uploads, kernels, downloads), and the latter over pinned host-to-device bandwidth measured in the same
 * run. {@code shardquant bench} calls {@link #measure}; {@link #main} runs it without Spark, for a GPU
 * machine that has only the kernels module's classpath (.device/, see src/main/cuda/README.md).
 */
public final class CudaBench {
  private static final int REPETITIONS = 5;

  private CudaBench() {}

  /** Measures {@code shards} of {@code c} (with their global statistics) and prints two lines. */
  public static void measure(String recipe, List<Tensor> shards, List<GlobalStats> globals, QuantConfig c, CudaBackend cuda,
      PrintStream out) {
    long bytes = shards.stream().mapToLong(Tensor::byteSize).sum();
    long elements = shards.stream().mapToLong(Tensor::numel).sum();
    double h2d = pinnedUploadRate(cuda.device(), Math.min(bytes, 256L << 20));
    JCudaDevice timer = cuda.device() instanceof JCudaDevice j ? j : null;
    long bestEndToEnd = Long.MAX_VALUE;
    double bestKernels = Double.MAX_VALUE;
    quantizeAll(shards, globals, c, cuda, elements); // warm-up: module load, JIT, allocation caches
    for (int i = 0; i < REPETITIONS; i++) {
      if (timer != null) {
        timer.takeKernelSeconds();
        timer.timeKernels(true);
      }
      long t0 = System.nanoTime();
      quantizeAll(shards, globals, c, cuda, elements);
      bestEndToEnd = Math.min(bestEndToEnd, System.nanoTime() - t0);
      if (timer != null) {
        timer.timeKernels(false);
        bestKernels = Math.min(bestKernels, timer.takeKernelSeconds());
      }
    }
    double endToEnd = bytes * 1e9 / Math.max(1, bestEndToEnd);
    if (timer != null) {
      out.printf(Locale.ROOT, "bench %s cuda kernels: %s GB/s input (GPU time of the kernels alone)%n", recipe,
          digits3(bytes / bestKernels / 1e9));
    }
    out.printf(Locale.ROOT, "bench %s cuda from host: %s GB/s input, %s of pinned H2D (%s GB/s)%n", recipe,
        digits3(endToEnd / 1e9), digits3(endToEnd / h2d), digits3(h2d / 1e9));
    out.flush();
  }

  private static void quantizeAll(List<Tensor> shards, List<GlobalStats> globals, QuantConfig c, Backend b, long elements) {
    long done = 0;
    for (int i = 0; i < shards.size(); i++) {
      QuantStats stats = new QuantStats();
      b.quantize(shards.get(i), c, globals.get(i), stats);
      done += stats.count();
    }
    if (done != elements) {
      throw new IllegalStateException("the kernels' stats count " + done + " elements; the shards hold " + elements);
    }
  }

  /** Host-to-device bandwidth from pinned memory: best of {@value #REPETITIONS} copies of {@code bytes}. */
  public static double pinnedUploadRate(CudaDevice dev, long bytes) {
    try (CudaDevice.Pinned host = dev.allocPinned(bytes); CudaDevice.Memory target = dev.alloc(bytes);
        CudaDevice.Stream s = dev.stream()) {
      dev.copyToDevice(host, 0, target.at(0), bytes, s);
      dev.synchronize(s);
      long best = Long.MAX_VALUE;
      for (int i = 0; i < REPETITIONS; i++) {
        long t0 = System.nanoTime();
        dev.copyToDevice(host, 0, target.at(0), bytes, s);
        dev.synchronize(s);
        best = Math.min(best, System.nanoTime() - t0);
      }
      return bytes * 1e9 / Math.max(1, best);
    }
  }

  /**
   * Without Spark: {@code java -cp KERNELS_CP shardquant.kernels.backend.cuda.CudaBench [recipe ...]}
   * measures Llama-3-8B's layer (7 bf16 matrices, 436 MB) in 64 MiB row shards on CUDA device 0.
   */
  public static void main(String[] args) {
    CudaBackend cuda = Backends.cuda(0, Backends.TASKS_PER_GPU);
    System.out.println("bench: " + cuda + (cuda.cpuOnly().isEmpty() ? "" : "; on the CPU: " + cuda.cpuOnly()));
    long h = 4096;
    long[][] shapes = {{h, h}, {h / 4, h}, {h / 4, h}, {h, h}, {h * 7 / 2, h}, {h * 7 / 2, h}, {h, h * 7 / 2}};
    List<Tensor> layer = new ArrayList<>();
    for (int i = 0; i < shapes.length; i++) {
      layer.add(SyntheticWeights.directBf16(42, "layer.0.m" + i + ".weight", shapes[i][0], shapes[i][1]));
    }
    List<Recipe> recipes = new ArrayList<>();
    for (String a : args) {
      recipes.add(Recipe.fromCliName(a));
    }
    if (recipes.isEmpty()) {
      recipes.addAll(List.of(Recipe.values()));
    }
    for (Recipe r : recipes) {
      if (!cuda.nameFor(r).equals(cuda.name())) {
        System.out.println("bench " + r.cliName() + " cuda: no CUDA kernel, skipped");
        continue;
      }
      QuantConfig c = QuantConfig.of(r);
      RecipeKernel k = r.kernel();
      List<Tensor> shards = new ArrayList<>();
      List<GlobalStats> globals = new ArrayList<>();
      for (Tensor w : layer) {
        long align = k.rowAlignment(w.cols(), c);
        long perShard = Math.max(align, (64L << 20) / (w.cols() * 2) / align * align);
        List<Tensor> rows = new ArrayList<>();
        for (long r0 = 0; r0 < w.rows(); r0 += perShard) {
          rows.add(w.rowSlice(r0, Math.min(w.rows(), r0 + perShard)));
        }
        GlobalStats g = r == Recipe.NF4
            ? new GlobalStats(Nf4Ref.scalerMean(w.dtype(), rows.stream().map(cuda::nf4BlockAbsmax).toList())) : GlobalStats.NONE;
        rows.forEach(t -> {
          shards.add(t);
          globals.add(g);
        });
      }
      measure(r.cliName(), shards, globals, c, cuda, System.out);
    }
  }

  private static String digits3(double v) {
    return new BigDecimal(v).round(new MathContext(3)).toPlainString();
  }
}
