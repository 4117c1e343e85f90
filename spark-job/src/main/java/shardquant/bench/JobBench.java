package shardquant.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;
import shardquant.job.JobOptions;
import shardquant.job.QuantizeJob;
import shardquant.kernels.select.Backends;
import shardquant.kernels.bench.KernelBench;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.plan.JobSpec;

/**
 * {@code bench job}: times {@code cp -R} of a checkpoint, then the whole job in embedded local mode
 * (Spark's start included) on the same files, in a temporary directory it removes; both read the files
 * from the page cache and neither syncs its writes. The kernels alone: {@link KernelBench}.
 */
public final class JobBench {
  public static final Recipe RECIPE = Recipe.INT4_TILE_PACKED;

  private JobBench() {}

  /** Writes the input checkpoint into an empty directory and returns its size in bytes. */
  @FunctionalInterface
  public interface Input {
    long write(Path dir) throws IOException;
  }

  /** {@code bench job local: X GB/s, Y of cp}: Y is cp's time over the job's, 1 as fast as cp. */
  public record Figures(long bytes, long jobNanos, long cpNanos, String master, QuantConfig config, boolean verified,
      QuantizeJob.Phases phases, long cpuNanos) {
    public double gigabytesPerSecond() {
      return bytes / (double) Math.max(1, jobNanos);
    }

    public double ofCp() {
      return cpNanos / (double) Math.max(1, jobNanos);
    }

    public String line() {
      return String.format(Locale.ROOT, "bench job local: %s GB/s, %s of cp", KernelBench.digits3(gigabytesPerSecond()),
          KernelBench.digits3(ofCp()));
    }

    public String note() {
      return String.format(Locale.ROOT, "note: job %.2f s (%s, %s on %s, Spark's start included), cp -R %.2f s, of a %.1f MB "
              + "synthetic checkpoint in 4 files read from the page cache; \"of cp\" is cp's time over the job's: 1 is as fast "
              + "as cp", jobNanos / 1e9, master, config, Backends.cpu().nameFor(config.recipe()), cpNanos / 1e9, bytes / 1e6);
    }

    /** Where the job's time went: the fixed costs (planning, Spark's start, warm-up, commit) beside the stages. */
    public String phasesNote() {
      return String.format(Locale.ROOT, "note: of the job's %.2f s: setup %.2f s (backend self-check, headers, plan, output directory), "
              + "Spark's start %.2f s, stages %.2f s (of "
              + "which the first wave of quantize tasks ran %.2f s of task time above the median task: JIT warm-up), "
              + "commit %.2f s; without the fixed costs (setup, start, commit) the job ran at %s of cp",
          jobNanos / 1e9, phases.planNanos() / 1e9, phases.sparkStartNanos() / 1e9, phases.stagesNanos() / 1e9,
          phases.warmUpNanos() / 1e9, phases.commitNanos() / 1e9,
          KernelBench.digits3(cpNanos / (double) Math.max(1, phases.stagesNanos())));
    }

    /** The job's CPU time: on a loaded machine a steadier figure than its wall time. */
    public String cpuNote() {
      return String.format(Locale.ROOT, "note: the job took %.2f s of CPU time (all its threads, user and system; %.2f cores "
          + "busy on average)", cpuNanos / 1e9, cpuNanos / (double) Math.max(1, jobNanos));
    }
  }

  /** Times cp and the job ({@link #RECIPE}, default shard and file sizes, backend auto) on what {@code input} writes. */
  public static Figures run(Input input, PrintStream console) throws IOException {
    Path root = Files.createTempDirectory("shardquant-bench-");
    try {
      Path in = root.resolve("input");
      long bytes = input.write(in);

      Path copy = root.resolve("cp");
      long t0 = System.nanoTime();
      cp(in, copy);
      long cpNanos = System.nanoTime() - t0;
      deleteTree(copy);

      JobSpec spec = new JobSpec(QuantConfig.of(RECIPE), null, null, JobSpec.DEFAULT_SHARD_BYTES,
          JobSpec.DEFAULT_OUTPUT_FILE_BYTES);
      JobOptions o = new JobOptions(in.toString(), root.resolve("output").toString(), spec, null, "auto", null, Map.of());
      long cpu0 = processCpuNanos();
      long t1 = System.nanoTime();
      QuantizeJob.Result r = QuantizeJob.run(o, console);
      long jobNanos = System.nanoTime() - t1;
      long cpu = processCpuNanos() - cpu0;
      return new Figures(bytes, jobNanos, cpNanos, r.master(), spec.config(), r.verified(), r.phases(), cpu);
    } finally {
      deleteTree(root);
    }
  }

  /** This JVM's CPU time so far (every thread, user and system), or 0 where the JVM does not say. */
  private static long processCpuNanos() {
    return java.lang.management.ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os
        ? Math.max(0, os.getProcessCpuTime()) : 0;
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
