package shardquant.kernels.bench;

import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import java.util.function.Predicate;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.select.Backends;
import shardquant.kernels.backend.cuda.CudaBackend;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.RecipeKernel;
import shardquant.kernels.tensor.SyntheticWeights;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * The kernel benchmark of every backend ({@code shardquant bench}, {@link CudaBench#main}, and the JMH
 * module's setup): how fast each recipe's kernel quantizes, against copying the same bytes in the same
 * run.
 *
 * <p>The input is one Llama-3-8B decoder layer's seven matrices (bf16, 436 MB, in direct buffers; or
 * scaled to a smaller hidden size) cut into row shards as the job cuts them, quantized one shard after
 * another on one thread. Each repetition copies the same shards (direct to direct {@code ByteBuffer.put},
 * one thread) and then quantizes them, so both figures see the same machine state; each is the best of
 * {@value #REPETITIONS} after a warm-up pass. The reference runs at tens of MB/s and is timed on
 * {@link #REFERENCE_SAMPLE} of the small layer only. A recipe's first pass (NF4's block absmax for the
 * tensor's scaler mean) runs once before timing and is not in its figure. On the CUDA backend the run
 * adds {@link CudaBench}'s figures.
 */
public final class KernelBench {
  public static final int REPETITIONS = 5;
  public static final long SEED = 42;
  /** Llama-3-8B's hidden size. */
  public static final long HIDDEN = 4096;
  /** The hidden size of {@code bench --small}, and of the layer the reference is timed on. */
  public static final long SMALL_HIDDEN = 1024;
  /** The small layer's matrices the reference is timed on (1 MB): two shards for two threads, a second or so. */
  public static final List<String> REFERENCE_SAMPLE = List.of("k_proj", "v_proj");

  /** One weight matrix of the layer: [N out features, K in features]. */
  public record Matrix(String name, Tensor weights) {}

  /** A row shard to quantize, with its tensor's global statistics (from its recipe's first pass, if any). */
  public record Shard(Tensor rows, GlobalStats global) {}

  /** {@code bench <what>: X GB/s input, Y of memcpy}: Y is the copy's time over the kernel's. */
  public record Figures(String what, long bytes, long copyNanos, long kernelNanos) {
    public double gigabytesPerSecond() {
      return bytes / (double) Math.max(1, kernelNanos);
    }

    public double ofMemcpy() {
      return Math.max(1, copyNanos) / (double) Math.max(1, kernelNanos);
    }

    public String line() {
      return String.format(Locale.ROOT, "bench %s: %s GB/s input, %s of memcpy", what, digits3(gigabytesPerSecond()),
          digits3(ofMemcpy()));
    }
  }

  /** {@code bench <what> xT: X GB/s input, Sx one thread}: S is one thread's time over T threads'. */
  public record ParallelFigures(Figures oneThread, int threads, long nanos) {
    public double gigabytesPerSecond() {
      return oneThread.bytes() / (double) Math.max(1, nanos);
    }

    public double speedup() {
      return Math.max(1, oneThread.kernelNanos()) / (double) Math.max(1, nanos);
    }

    public String line() {
      return String.format(Locale.ROOT, "bench %s x%d: %s GB/s input, %sx one thread", oneThread.what(), threads,
          digits3(gigabytesPerSecond()), digits3(speedup()));
    }
  }

  private final long shardBytes;
  private final List<Matrix> layer;
  private final List<Matrix> referenceSample;
  private final ByteBuffer copyTarget;
  private final LongSupplier clock;

  /**
   * The layer at {@code hidden} (and the reference's sample) in row shards of up to {@code shardBytes};
   * the layer and a copy target as large as its largest matrix are direct buffers, so this throws
   * OutOfMemoryError where they do not fit.
   */
  public KernelBench(long hidden, long shardBytes) {
    this(hidden, shardBytes, System::nanoTime);
  }

  KernelBench(long hidden, long shardBytes, LongSupplier clock) {
    if (shardBytes < 1) {
      throw new IllegalArgumentException("shard bytes must be positive, got " + shardBytes);
    }
    this.shardBytes = shardBytes;
    this.clock = clock;
    this.layer = layer(hidden, name -> true);
    this.referenceSample = layer(SMALL_HIDDEN, REFERENCE_SAMPLE::contains);
    // A shard is never larger than its matrix.
    this.copyTarget = ByteBuffer.allocateDirect(Math.toIntExact(layer.stream().mapToLong(m -> m.weights().byteSize()).max()
        .orElseThrow()));
  }

  public long layerBytes() {
    return layer.stream().mapToLong(m -> m.weights().byteSize()).sum();
  }

  public long sampleBytes() {
    return referenceSample.stream().mapToLong(m -> m.weights().byteSize()).sum();
  }

  /**
   * Measures each recipe on each backend (a recipe the backend runs on the reference is measured once,
   * as reference), prints each figure's line as soon as it is known, and returns the recipes of
   * {@code backends} other than the reference that ran on the reference.
   */
  public Set<String> run(List<Recipe> recipes, List<Backend> backends, int threads, Consumer<String> print) {
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be at least 1, got " + threads);
    }
    String reference = Backends.reference().name();
    Set<String> measured = new LinkedHashSet<>();
    Set<String> withoutKernel = new LinkedHashSet<>();
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      for (Recipe recipe : recipes) {
        QuantConfig config = QuantConfig.of(recipe);
        for (Backend backend : backends) {
          String name = backend.nameFor(recipe);
          if (backend != Backends.reference() && name.equals(reference)) {
            withoutKernel.add(recipe.cliName());
          }
          if (!measured.add(recipe.cliName() + " " + name)) {
            continue; // the reference already measured for this recipe
          }
          List<Shard> shards = shards(name.equals(reference) ? referenceSample : layer, config, backend);
          Figures one = measure(recipe.cliName() + " " + name, shards, config, backend);
          print.accept(one.line());
          if (threads > 1) {
            print.accept(parallel(one, shards, config, backend, threads, pool).line());
          }
          if (backend instanceof CudaBackend cuda && name.equals(cuda.name())) {
            CudaBench.measure(recipe.cliName(), shards, config, cuda).report().forEach(print);
          }
        }
      }
    } finally {
      pool.shutdownNow();
    }
    return withoutKernel;
  }

  /**
   * The matrices of Llama-3-8B's decoder layer whose names {@code keep} accepts, at {@code h = 4096}
   * (8 kv heads of 128, intermediate 14336) or scaled to another hidden size; values as the synthetic
   * checkpoint's layer 0.
   */
  public static List<Matrix> layer(long h, Predicate<String> keep) {
    long kv = h / 4;
    long intermediate = h * 7 / 2;
    Object[][] shapes = {
        {"self_attn", "q_proj", h, h}, {"self_attn", "k_proj", kv, h}, {"self_attn", "v_proj", kv, h},
        {"self_attn", "o_proj", h, h}, {"mlp", "gate_proj", intermediate, h}, {"mlp", "up_proj", intermediate, h},
        {"mlp", "down_proj", h, intermediate}};
    List<Matrix> out = new ArrayList<>();
    for (Object[] s : shapes) {
      if (keep.test((String) s[1])) {
        String full = "model.layers.0." + s[0] + "." + s[1] + ".weight";
        out.add(new Matrix((String) s[1], SyntheticWeights.directBf16(SEED, full, (long) s[2], (long) s[3])));
      }
    }
    return out;
  }

  /**
   * The layer's matrices in row shards as the job cuts them, largest first (so threads that take the
   * next shard finish close together), each with its tensor's global statistics computed here, outside
   * the timing.
   */
  public List<Shard> shards(QuantConfig c, Backend backend) {
    return shards(layer, c, backend);
  }

  private List<Shard> shards(List<Matrix> matrices, QuantConfig c, Backend backend) {
    RecipeKernel kernel = c.recipe().kernel();
    List<Shard> out = new ArrayList<>();
    for (Matrix m : matrices) {
      Tensor w = m.weights();
      String refusal = kernel.refusal(w.rows(), w.cols(), w.dtype(), c);
      if (refusal != null) {
        throw new IllegalStateException("recipe " + c + " refuses the bench's " + m.name() + ": " + refusal);
      }
      long perShard = Tensor.rowsPerShard(w.cols() * w.dtype().byteSize(), shardBytes, kernel.rowAlignment(w.cols(), c));
      List<Tensor> rows = new ArrayList<>();
      for (long r = 0; r < w.rows(); r += perShard) {
        rows.add(w.rowSlice(r, Math.min(w.rows(), r + perShard)));
      }
      GlobalStats global = firstPass(rows, c, backend);
      rows.forEach(t -> out.add(new Shard(t, global)));
    }
    out.sort(Comparator.comparingLong((Shard s) -> s.rows().byteSize()).reversed());
    return out;
  }

  /** A tensor's global statistics from all its row shards, on {@code backend}: its recipe's first pass, or none. */
  public static GlobalStats firstPass(List<Tensor> rows, QuantConfig c, Backend backend) {
    return backend.globalStats(c, rows);
  }

  /** One thread: the best copy and the best kernel time of {@value #REPETITIONS}, alternating, after a warm-up. */
  Figures measure(String what, List<Shard> shards, QuantConfig c, Backend backend) {
    long bytes = shards.stream().mapToLong(s -> s.rows().byteSize()).sum();
    long elements = elements(shards);
    copy(shards);
    checkAll(elements, quantize(shards, new AtomicInteger(), c, backend));
    long bestCopy = Long.MAX_VALUE;
    long bestKernel = Long.MAX_VALUE;
    for (int i = 0; i < REPETITIONS; i++) {
      long t0 = clock.getAsLong();
      copy(shards);
      long t1 = clock.getAsLong();
      checkAll(elements, quantize(shards, new AtomicInteger(), c, backend));
      long t2 = clock.getAsLong();
      bestCopy = Math.min(bestCopy, t1 - t0);
      bestKernel = Math.min(bestKernel, t2 - t1);
    }
    return new Figures(what, bytes, bestCopy, bestKernel);
  }

  /** {@code threads} threads taking the next shard until none is left: the best of {@value #REPETITIONS}. */
  private ParallelFigures parallel(Figures one, List<Shard> shards, QuantConfig c, Backend backend, int threads,
      ExecutorService pool) {
    long elements = elements(shards);
    long best = Long.MAX_VALUE;
    for (int i = 0; i < REPETITIONS; i++) {
      AtomicInteger next = new AtomicInteger();
      long t0 = clock.getAsLong();
      List<Future<Long>> parts = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        parts.add(pool.submit(() -> quantize(shards, next, c, backend)));
      }
      long done = 0;
      for (Future<Long> f : parts) {
        done += join(f);
      }
      best = Math.min(best, clock.getAsLong() - t0);
      checkAll(elements, done);
    }
    return new ParallelFigures(one, threads, best);
  }

  /** Quantizes shards, taking the next one from {@code next} until none are left; the elements it quantized. */
  static long quantize(List<Shard> shards, AtomicInteger next, QuantConfig c, Backend backend) {
    long elements = 0;
    for (int i = next.getAndIncrement(); i < shards.size(); i = next.getAndIncrement()) {
      Shard s = shards.get(i);
      QuantStats stats = new QuantStats();
      backend.quantize(s.rows(), c, s.global(), stats);
      elements += stats.count();
    }
    return elements;
  }

  static long elements(List<Shard> shards) {
    return shards.stream().mapToLong(s -> s.rows().numel()).sum();
  }

  /** The measured work must be all of it: a kernel that skipped elements would look fast. */
  static void checkAll(long expected, long done) {
    if (done != expected) {
      throw new IllegalStateException("the kernels' stats count " + done + " elements; the shards hold " + expected);
    }
  }

  private void copy(List<Shard> shards) {
    for (Shard s : shards) {
      copyTarget.clear();
      copyTarget.put(s.rows().bytes());
    }
  }

  private static long join(Future<Long> f) {
    try {
      return f.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while the bench's threads ran", e);
    } catch (ExecutionException e) {
      throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
    }
  }

  /** Three significant digits, never in exponent form: 16.2, 0.250, 0.00187. */
  public static String digits3(double v) {
    return new BigDecimal(v).round(new MathContext(3)).toPlainString();
  }
}
