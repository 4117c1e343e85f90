package shardquant.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.math.MathContext;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import java.util.stream.Stream;
import shardquant.common.Format;
import shardquant.common.UserError;
import shardquant.job.JobOptions;
import shardquant.job.QuantizeJob;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.backend.cuda.CudaBackend;
import shardquant.kernels.backend.cuda.CudaBench;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.Nf4Ref;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.RecipeKernel;
import shardquant.kernels.select.Backends;
import shardquant.kernels.tensor.SyntheticWeights;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;
import shardquant.plan.JobSpec;
import shardquant.plan.Planner;

/**
 * {@code shardquant bench}: how fast each recipe's kernel quantizes on each backend, against copying
 * the same bytes in the same run; {@code bench job}: the whole local-mode job against {@code cp}.
 *
 * <p>Kernels: one Llama-3-8B decoder layer's seven matrices (bf16, 436 MB, in direct buffers) cut into
 * row shards exactly as the job cuts them ({@link Planner#rowsPerShard}), quantized one shard after
 * another on one thread. Each repetition copies the same shards (direct to direct {@code ByteBuffer.put},
 * one thread) and then quantizes them, so both figures see the same machine state; each is the best of
 * {@value #REPETITIONS} after a warm-up pass. The reference runs at tens of MB/s and is timed on
 * {@link #REFERENCE_SAMPLE} of the small layer only. NF4's first pass (the block absmax for the tensor's scaler mean) runs
 * once before timing and is not in its figure.
 */
final class Bench {
  private static final int REPETITIONS = 5;
  private static final long SEED = 42;
  private static final long JOB_BYTES = 2L << 30;
  private static final long SMALL_JOB_BYTES = 200L << 20;
  private static final Recipe JOB_RECIPE = Recipe.INT4_TILE_PACKED;
  private static final long HIDDEN = 4096;
  private static final long SMALL_HIDDEN = 1024;
  /** The small layer's matrices the reference is timed on (1 MB): two shards for two threads, a second or so. */
  private static final Set<String> REFERENCE_SAMPLE = Set.of("k_proj", "v_proj");

  private Bench() {}

  /** One weight matrix of the layer: [N out features, K in features]. */
  private record Matrix(String name, Tensor weights) {}

  /** A row shard to quantize, with its tensor's global statistics (NF4's scaler mean). */
  private record Shard(Tensor rows, GlobalStats global) {}

  static int run(String[] args, PrintStream out, PrintStream err) throws IOException {
    boolean small = Arrays.asList(args).contains("--small");
    String[] rest = Arrays.stream(args).filter(a -> !a.equals("--small")).toArray(String[]::new);
    if (rest.length > 0 && rest[0].equals("job")) {
      return job(Arrays.copyOfRange(rest, 1, rest.length), small, out, err);
    }
    Args a = new Args("bench", rest, Set.of("recipe", "backend", "threads"));
    List<Recipe> recipes;
    List<Backend> backends;
    try {
      recipes = a.get("recipe") == null ? List.of(Recipe.values()) : List.of(Recipe.fromCliName(a.get("recipe")));
      backends = a.get("backend") == null ? List.of(Backends.reference(), Backends.cpu()) : List.of(Backends.forName(a.get("backend")));
    } catch (IllegalArgumentException e) {
      throw new UserError(e.getMessage());
    }
    Integer threadsArg = a.integer("threads");
    int threads = threadsArg == null ? 1 : threadsArg;
    if (threads < 1) {
      throw new UserError("--threads must be at least 1, got " + threads);
    }

    List<Matrix> layer;
    List<Matrix> referenceSample;
    ByteBuffer copyTarget;
    try {
      layer = layer(small ? SMALL_HIDDEN : HIDDEN, name -> true);
      referenceSample = layer(SMALL_HIDDEN, REFERENCE_SAMPLE::contains);
      // A shard is never larger than its matrix.
      copyTarget = ByteBuffer.allocateDirect((int) layer.stream().mapToLong(m -> m.weights().byteSize()).max().orElseThrow());
    } catch (OutOfMemoryError e) {
      throw new UserError("the layer and a copy target (" + (small ? "0.1" : "0.6") + " GB of direct buffers) do not fit in this "
          + "JVM's direct memory (" + e.getMessage() + "); allow more with JAVA_OPTS=-XX:MaxDirectMemorySize=1g, or run bench "
          + "--small");
    }
    Set<String> measured = new LinkedHashSet<>();
    Set<String> withoutKernel = new LinkedHashSet<>();
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      for (Recipe recipe : recipes) {
        QuantConfig config = QuantConfig.of(recipe);
        for (Backend backend : backends) {
          String name = backend.nameFor(recipe);
          if (backend != Backends.reference() && name.equals(Backends.reference().name())) {
            withoutKernel.add(recipe.cliName());
          }
          if (!measured.add(recipe.cliName() + " " + name)) {
            continue; // the reference already measured for this recipe
          }
          boolean isReference = name.equals(Backends.reference().name());
          List<Shard> shards = shards(isReference ? referenceSample : layer, config, backend);
          measure(recipe.cliName() + " " + name, shards, config, backend, threads, pool, copyTarget, out);
          if (backend instanceof CudaBackend cuda && name.equals(cuda.name())) {
            CudaBench.measure(recipe.cliName(), shards.stream().map(Shard::rows).toList(),
                shards.stream().map(Shard::global).toList(), config, cuda, out);
          }
        }
      }
    } finally {
      pool.shutdownNow();
    }
    long layerBytes = layer.stream().mapToLong(m -> m.weights().byteSize()).sum();
    long sampleBytes = referenceSample.stream().mapToLong(m -> m.weights().byteSize()).sum();
    out.printf(Locale.ROOT, "note: GB/s is 10^9 bytes of bf16 input per second on one thread; memcpy is ByteBuffer.put of the same "
            + "shards (direct to direct, one thread) timed alternately with the kernel; best of %d after a warm-up pass%n",
        REPETITIONS);
    out.printf(Locale.ROOT, "note: the layer is Llama-3-8B's 7 matrices%s, %s of bf16 in row shards of up to %s as the job "
            + "cuts them; the reference, much slower, is timed on the small layer's %s only (%s)%s%n",
        small ? " scaled to hidden " + SMALL_HIDDEN : "", megabytes(layerBytes), Format.bytes(JobSpec.DEFAULT_SHARD_BYTES),
        String.join(" and ", REFERENCE_SAMPLE.stream().sorted().toList()), megabytes(sampleBytes),
        threads > REFERENCE_SAMPLE.size() ? ", one shard each: its x" + threads + " line uses " + REFERENCE_SAMPLE.size()
            + " threads at most" : "");
    if (recipes.contains(Recipe.NF4)) {
      out.println("note: nf4's first pass (block absmax for the scaler mean) runs once before timing and is not in its figure");
    }
    if (Backends.simdProblem() != null && backends.contains(Backends.cpu())) {
      out.println("note: the SIMD kernels cannot run here (" + Backends.simdProblem() + "): cpu is the reference");
    } else if (!withoutKernel.isEmpty()) {
      out.println("note: no SIMD kernel yet for " + String.join(", ", withoutKernel) + ": cpu runs the reference there, "
          + "measured once, as reference");
    }
    return Main.OK;
  }

  /**
   * The matrices of Llama-3-8B's decoder layer whose names {@code keep} accepts, at {@code h = 4096}
   * (8 kv heads of 128, intermediate 14336) or scaled to another hidden size; values as the synthetic
   * checkpoint's layer 0.
   */
  private static List<Matrix> layer(long h, Predicate<String> keep) {
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
   * The matrices' row shards as the job cuts them, largest first (so threads that take the next shard
   * finish close together), each with its tensor's global statistics computed here, outside the timing.
   */
  private static List<Shard> shards(List<Matrix> matrices, QuantConfig c, Backend backend) {
    RecipeKernel kernel = c.recipe().kernel();
    List<Shard> out = new ArrayList<>();
    for (Matrix m : matrices) {
      Tensor w = m.weights();
      String refusal = kernel.refusal(w.rows(), w.cols(), w.dtype(), c);
      if (refusal != null) {
        throw new IllegalStateException("recipe " + c + " refuses the bench's " + m.name() + ": " + refusal);
      }
      long perShard = Planner.rowsPerShard(w.cols() * w.dtype().byteSize(), JobSpec.DEFAULT_SHARD_BYTES,
          kernel.rowAlignment(w.cols(), c));
      List<Tensor> rows = new ArrayList<>();
      for (long r = 0; r < w.rows(); r += perShard) {
        rows.add(w.rowSlice(r, Math.min(w.rows(), r + perShard)));
      }
      GlobalStats global = c.recipe() == Recipe.NF4
          ? new GlobalStats(Nf4Ref.scalerMean(w.dtype(), rows.stream().map(backend::nf4BlockAbsmax).toList()))
          : GlobalStats.NONE;
      rows.forEach(t -> out.add(new Shard(t, global)));
    }
    out.sort(Comparator.comparingLong((Shard s) -> s.rows().byteSize()).reversed());
    return out;
  }

  /** Prints the one-thread line, and the {@code x<threads>} line when threads > 1. */
  private static void measure(String what, List<Shard> shards, QuantConfig c, Backend backend, int threads,
      ExecutorService pool, ByteBuffer copyTarget, PrintStream out) {
    long bytes = shards.stream().mapToLong(s -> s.rows().byteSize()).sum();
    long elements = shards.stream().mapToLong(s -> s.rows().numel()).sum();
    copy(shards, copyTarget);
    checkAll(elements, quantize(shards, new AtomicInteger(), c, backend));
    long bestCopy = Long.MAX_VALUE;
    long bestKernel = Long.MAX_VALUE;
    for (int i = 0; i < REPETITIONS; i++) {
      long t0 = System.nanoTime();
      copy(shards, copyTarget);
      long t1 = System.nanoTime();
      checkAll(elements, quantize(shards, new AtomicInteger(), c, backend));
      long t2 = System.nanoTime();
      bestCopy = Math.min(bestCopy, t1 - t0);
      bestKernel = Math.min(bestKernel, t2 - t1);
    }
    double kernelRate = rate(bytes, bestKernel);
    out.printf(Locale.ROOT, "bench %s: %s GB/s input, %s of memcpy%n", what, digits3(kernelRate / 1e9),
        digits3(kernelRate / rate(bytes, bestCopy)));
    out.flush();
    if (threads == 1) {
      return;
    }
    long bestParallel = Long.MAX_VALUE;
    for (int i = 0; i < REPETITIONS; i++) {
      AtomicInteger next = new AtomicInteger();
      long t0 = System.nanoTime();
      List<Future<Long>> parts = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        parts.add(pool.submit(() -> quantize(shards, next, c, backend)));
      }
      long done = 0;
      for (Future<Long> f : parts) {
        done += join(f);
      }
      bestParallel = Math.min(bestParallel, System.nanoTime() - t0);
      checkAll(elements, done);
    }
    double parallelRate = rate(bytes, bestParallel);
    out.printf(Locale.ROOT, "bench %s x%d: %s GB/s input, %sx one thread%n", what, threads, digits3(parallelRate / 1e9),
        digits3(parallelRate / kernelRate));
    out.flush();
  }

  /** Quantizes shards, taking the next one from {@code next} until none are left; the elements it quantized. */
  private static long quantize(List<Shard> shards, AtomicInteger next, QuantConfig c, Backend backend) {
    long elements = 0;
    for (int i = next.getAndIncrement(); i < shards.size(); i = next.getAndIncrement()) {
      Shard s = shards.get(i);
      QuantStats stats = new QuantStats();
      backend.quantize(s.rows(), c, s.global(), stats);
      elements += stats.count();
    }
    return elements;
  }

  /** The measured work must be all of it: a kernel that skipped elements would look fast. */
  private static void checkAll(long expected, long done) {
    if (done != expected) {
      throw new IllegalStateException("the kernels' stats count " + done + " elements; the shards hold " + expected);
    }
  }

  private static void copy(List<Shard> shards, ByteBuffer target) {
    for (Shard s : shards) {
      target.clear();
      target.put(s.rows().bytes());
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

  /** Bytes per second. */
  private static double rate(long bytes, long nanos) {
    return bytes * 1e9 / Math.max(1, nanos);
  }

  /** Three significant digits, never in exponent form: 16.2, 0.250, 0.00187. */
  private static String digits3(double v) {
    return new BigDecimal(v).round(new MathContext(3)).toPlainString();
  }

  private static String megabytes(long bytes) {
    return String.format(Locale.ROOT, "%.1f MB", bytes / 1e6);
  }

  /**
   * {@code bench job}: writes a synthetic checkpoint, times {@code cp -R} of it, then the whole job in
   * embedded local mode (Spark's start included) on the same files; both read them from the page cache
   * and neither syncs its writes.
   */
  private static int job(String[] args, boolean small, PrintStream out, PrintStream err) throws IOException {
    Args a = new Args("bench job", args, Set.of("bytes"));
    long bytes = a.bytes("bytes", small ? SMALL_JOB_BYTES : JOB_BYTES);
    SyntheticCheckpoint.Shape shape = SyntheticCheckpoint.Shape.forBytes(bytes);
    Path root = Files.createTempDirectory("shardquant-bench-");
    try {
      Path input = root.resolve("input");
      err.printf("bench job: writing a synthetic %s checkpoint to %s%n", Format.bytes(shape.totalBytes()), input);
      SyntheticCheckpoint.write(input, shape, 4, SEED, null);

      Path copy = root.resolve("cp");
      long t0 = System.nanoTime();
      cp(input, copy);
      long cpNanos = System.nanoTime() - t0;
      deleteTree(copy);

      JobSpec spec = new JobSpec(QuantConfig.of(JOB_RECIPE), null, null, JobSpec.DEFAULT_SHARD_BYTES,
          JobSpec.DEFAULT_OUTPUT_FILE_BYTES);
      JobOptions o = new JobOptions(input.toString(), root.resolve("output").toString(), spec, null, "auto", null, Map.of());
      long t1 = System.nanoTime();
      QuantizeJob.Result r = QuantizeJob.run(o, err);
      long jobNanos = System.nanoTime() - t1;

      out.printf(Locale.ROOT, "bench job local: %s GB/s, %s of cp%n", digits3(rate(shape.totalBytes(), jobNanos) / 1e9),
          digits3((double) cpNanos / jobNanos));
      out.printf(Locale.ROOT, "note: job %.2f s (%s, %s on %s, Spark's start included), cp -R %.2f s, of a %s synthetic "
              + "checkpoint in 4 files read from the page cache; \"of cp\" is cp's time over the job's: 1 is as fast as cp%n",
          jobNanos / 1e9, r.master(), spec.config(), Backends.cpu().nameFor(JOB_RECIPE), cpNanos / 1e9,
          megabytes(shape.totalBytes()));
      return r.verified() ? Main.OK : Main.VERIFY_FAILED;
    } finally {
      deleteTree(root);
    }
  }

  private static void cp(Path from, Path to) throws IOException {
    Process p = new ProcessBuilder("cp", "-R", from.toString(), to.toString()).redirectErrorStream(true).start();
    try {
      String said = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
      if (p.waitFor() != 0) {
        throw new IOException("cp -R " + from + " " + to + " failed (exit " + p.exitValue() + "): " + said);
      }
    } catch (InterruptedException e) {
      p.destroy();
      Thread.currentThread().interrupt();
      throw new IOException("interrupted while cp ran", e);
    }
  }

  private static void deleteTree(Path root) throws IOException {
    if (!Files.exists(root)) {
      return;
    }
    try (Stream<Path> all = Files.walk(root)) {
      for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }
}
