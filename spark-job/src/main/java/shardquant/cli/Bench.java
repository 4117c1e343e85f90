package shardquant.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import shardquant.bench.JobBench;
import shardquant.common.Format;
import shardquant.common.UserError;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.bench.KernelBench;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.select.Backends;
import shardquant.plan.JobSpec;

/**
 * {@code shardquant bench}: parses the options, runs {@link KernelBench} (each recipe's kernel on each
 * backend against memcpy) or, for {@code bench job}, {@link JobBench} (the whole job against {@code cp}),
 * and prints their lines and what they measured.
 */
final class Bench {
  private static final long JOB_BYTES = 2L << 30;
  private static final long SMALL_JOB_BYTES = 200L << 20;

  private Bench() {}

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

    KernelBench bench;
    try {
      bench = new KernelBench(small ? KernelBench.SMALL_HIDDEN : KernelBench.HIDDEN, JobSpec.DEFAULT_SHARD_BYTES);
    } catch (OutOfMemoryError e) {
      throw new UserError("the layer and a copy target (" + (small ? "0.1" : "0.6") + " GB of direct buffers) do not fit in this "
          + "JVM's direct memory (" + e.getMessage() + "); allow more with JAVA_OPTS=-XX:MaxDirectMemorySize=1g, or run bench "
          + "--small");
    }
    Set<String> withoutKernel = bench.run(recipes, backends, threads, line -> {
      out.println(line);
      out.flush();
    });
    out.printf(Locale.ROOT, "note: GB/s is 10^9 bytes of bf16 input per second on one thread; memcpy is ByteBuffer.put of the same "
            + "shards (direct to direct, one thread) timed alternately with the kernel; best of %d after a warm-up pass%n",
        KernelBench.REPETITIONS);
    int sampled = KernelBench.REFERENCE_SAMPLE.size();
    out.printf(Locale.ROOT, "note: the layer is Llama-3-8B's 7 matrices%s, %s of bf16 in row shards of up to %s as the job "
            + "cuts them; the reference, much slower, is timed on the small layer's %s only (%s)%s%n",
        small ? " scaled to hidden " + KernelBench.SMALL_HIDDEN : "", megabytes(bench.layerBytes()),
        Format.bytes(JobSpec.DEFAULT_SHARD_BYTES), String.join(" and ", KernelBench.REFERENCE_SAMPLE),
        megabytes(bench.sampleBytes()),
        threads > sampled ? ", one shard each: its x" + threads + " line uses " + sampled + " threads at most" : "");
    for (Recipe r : recipes) {
      if (r.firstPass().isPresent()) {
        out.println("note: " + r.cliName() + "'s first pass (its tensor-wide statistics) runs once before timing and is not in its figure");
      }
    }
    if (Backends.simdProblem() != null && backends.contains(Backends.cpu())) {
      out.println("note: the SIMD kernels cannot run here (" + Backends.simdProblem() + "): cpu is the reference");
    } else if (!withoutKernel.isEmpty()) {
      out.println("note: no SIMD kernel yet for " + String.join(", ", withoutKernel) + ": cpu runs the reference there, "
          + "measured once, as reference");
    }
    return Main.OK;
  }

  private static String megabytes(long bytes) {
    return String.format(Locale.ROOT, "%.1f MB", bytes / 1e6);
  }

  /** {@code bench job [--bytes B] [--small]}: a synthetic checkpoint of about B bytes (2 GiB; 200 MiB with --small). */
  private static int job(String[] args, boolean small, PrintStream out, PrintStream err) throws IOException {
    Args a = new Args("bench job", args, Set.of("bytes"));
    SyntheticCheckpoint.Shape shape = SyntheticCheckpoint.Shape.forBytes(a.bytes("bytes", small ? SMALL_JOB_BYTES : JOB_BYTES));
    JobBench.Figures f = JobBench.run(input -> {
      err.printf("bench job: writing a synthetic %s checkpoint to %s%n", Format.bytes(shape.totalBytes()), input);
      SyntheticCheckpoint.write(input, shape, 4, KernelBench.SEED, null);
      return shape.totalBytes();
    }, err);
    out.println(f.line());
    out.println(f.note());
    out.println(f.phasesNote());
    out.println(f.cpuNote());
    return f.verified() ? Main.OK : Main.VERIFY_FAILED;
  }
}
