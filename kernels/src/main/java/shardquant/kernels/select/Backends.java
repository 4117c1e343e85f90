package shardquant.kernels.select;

import java.lang.reflect.InvocationTargetException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.backend.SelfCheck;
import shardquant.kernels.backend.cuda.CudaBackend;
import shardquant.kernels.backend.cuda.CudaDevice;
import shardquant.kernels.backend.cuda.CudaProbe;
import shardquant.kernels.backend.reference.ReferenceBackend;
import shardquant.kernels.quant.Recipe;

/**
 * Chooses the CPU backend once, lazily, in the manner of Lucene's VectorizationProvider: the SIMD
 * kernels only where the {@code jdk.incubator.vector} module is present, preferred vectors are at
 * least {@value #MIN_VECTOR_BITS} bits and, recipe by recipe, the kernels pass a {@link SelfCheck}
 * against the reference on this JVM (the module's presence proves nothing: its API changes between Java
 * versions, and a JIT can miscompile); otherwise the reference runs and one log line names the Java
 * version and says why. Nothing else in the project references the incubator module, so it is optional
 * at run time. {@code auto} runs on CUDA where {@link CudaProbe} finds a usable GPU, else on the CPU,
 * and logs once which, on which Java, and why in one short line ({@code backend: cpu-simd on Java
 * 17.0.15 (no CUDA driver: libcuda.so.1 not found)}); the long details are logged at DEBUG (FINE).
 * Each backend is handed what it needs when it is made (the CUDA backend: its CPU backend and its
 * shard limit) and never calls back here.
 */
public final class Backends {
  public static final int MIN_VECTOR_BITS = 256;
  /** Shards on one GPU at once where the caller gives no limit: one uploading while another computes. */
  public static final int TASKS_PER_GPU = 2;
  private static final System.Logger LOG = System.getLogger(Backends.class.getName());
  private static final String SIMD_CLASS = "shardquant.kernels.backend.simd.SimdBackend";

  private static volatile Backend cpu;
  /** What {@link #installCpu} gave, checked in place of the SIMD kernels. */
  private static Backend installed;
  private static volatile String simdProblem;
  private static volatile boolean autoLogged;
  /** The CUDA backend of each device ordinal: one per GPU per JVM, shared by every task. */
  private static final Map<Integer, CudaBackend> CUDA = new ConcurrentHashMap<>();

  private Backends() {}

  public static Backend reference() {
    return ReferenceBackend.INSTANCE;
  }

  /**
   * The CPU SIMD backend where it can run here, else the reference (see {@link #simdProblem()}); the
   * first call runs the self-check (about a second).
   */
  public static Backend cpu() {
    return cpu(EnumSet.allOf(Recipe.class));
  }

  /**
   * {@link #cpu()}, where the first call of the JVM self-checks only {@code checkFirst} (the recipes a
   * job runs) before it returns, and any other recipe on its first use, so a job does not pay for the
   * check of kernels it never runs.
   */
  public static Backend cpu(Collection<Recipe> checkFirst) {
    Backend b = cpu;
    if (b == null) {
      synchronized (Backends.class) {
        if (cpu == null) {
          cpu = chooseCpu(checkFirst.isEmpty() ? EnumSet.noneOf(Recipe.class) : EnumSet.copyOf(checkFirst));
        }
        b = cpu;
      }
    }
    return b;
  }

  /**
   * Makes the next {@link #cpu()} check {@code candidate} against the reference, as it checks the SIMD
   * kernels, and give it (recipes that fail on the reference); null restores the usual choice. For tests
   * that break the fast path on purpose (the job must still write the reference's bytes) and for
   * embedding.
   */
  public static synchronized void installCpu(Backend candidate) {
    installed = candidate;
    cpu = null;
    simdProblem = null;
  }

  /** Why the SIMD kernels do not run here, or null when they do. */
  public static String simdProblem() {
    cpu();
    return simdProblem;
  }

  /**
   * A backend by the name users give: {@code auto} and {@code cpu} (SIMD where possible), {@code reference},
   * {@code cuda} (only where {@link CudaProbe#available()}; otherwise an IllegalArgumentException says why).
   */
  public static Backend forName(String name) {
    return forName(name, 0, TASKS_PER_GPU);
  }

  /** The names {@link #forName} takes. */
  public static final java.util.List<String> NAMES = java.util.List.of("auto", "cpu", "reference", "cuda");

  /** {@code name} if {@link #forName} takes it, else an IllegalArgumentException listing the names. */
  public static String checkName(String name) {
    if (!NAMES.contains(name)) {
      throw unknown(name);
    }
    return name;
  }

  private static IllegalArgumentException unknown(String name) {
    return new IllegalArgumentException("unknown backend '" + name + "'; choose auto, cpu, reference or cuda");
  }

  /**
   * {@link #forName(String)} with CUDA on device {@code cudaOrdinal} (a Spark task's GPU, see CudaDevices)
   * and at most {@code tasksPerGpu} shards on it at once, where this JVM's backend on that device starts
   * (later calls share it, and its limit).
   */
  public static Backend forName(String name, int cudaOrdinal, int tasksPerGpu) {
    return forName(name, cudaOrdinal, tasksPerGpu, EnumSet.allOf(Recipe.class));
  }

  /**
   * {@link #forName(String, int, int)} for a job that runs {@code recipes}: where this call starts the CPU
   * backend, only those are self-checked before it returns (see {@link #cpu(Collection)}).
   */
  public static Backend forName(String name, int cudaOrdinal, int tasksPerGpu, Collection<Recipe> recipes) {
    return switch (name) {
      case "auto" -> auto(cudaOrdinal, tasksPerGpu, recipes);
      case "cpu" -> cpu(recipes);
      case "reference" -> reference();
      case "cuda" -> {
        if (!CudaProbe.available() && !CUDA.containsKey(cudaOrdinal)) {
          throw new IllegalArgumentException("CUDA is unavailable here: " + CudaProbe.problem() + "; use --backend cpu or auto");
        }
        yield cuda(cudaOrdinal, tasksPerGpu);
      }
      default -> throw unknown(name);
    };
  }

  /**
   * This JVM's backend on CUDA device {@code ordinal} (as numbered among the visible devices), started on
   * first use (see {@link #forName(String, int, int)}), with {@link #cpu()} as its oracle and fallback.
   */
  public static CudaBackend cuda(int ordinal, int tasksPerGpu) {
    return CUDA.computeIfAbsent(ordinal, o -> CudaBackend.open(o, cpu(), tasksPerGpu));
  }

  /**
   * Makes {@code device} this JVM's CUDA device {@code ordinal} (after the same self-check), in place of
   * the GPU the driver would give: for tests, which run whole jobs on the emulator, and for embedding.
   */
  public static CudaBackend installCuda(int ordinal, CudaDevice device) {
    CudaBackend b = CudaBackend.start(device, cpu(), TASKS_PER_GPU);
    CUDA.put(ordinal, b);
    return b;
  }

  /**
   * Job {@code job} ended: this JVM's CUDA backends free the input shards they keep for it between its
   * stages ({@link CudaBackend#releaseResident}).
   */
  public static void jobEnded(String job) {
    CUDA.values().forEach(b -> b.releaseResident(job));
  }

  /** Removes what {@link #installCuda} put at {@code ordinal}. */
  public static void uninstallCuda(int ordinal) {
    CUDA.remove(ordinal);
  }

  /** CUDA where the probe finds a GPU and its backend starts, else the CPU; says once which and why. */
  private static Backend auto(int cudaOrdinal, int tasksPerGpu, Collection<Recipe> recipes) {
    String problem = CUDA.containsKey(cudaOrdinal) ? null : CudaProbe.problem();
    if (problem == null) {
      try {
        CudaBackend cuda = cuda(cudaOrdinal, tasksPerGpu);
        logAuto("backend: cuda on " + SelfCheck.runtime() + " (" + cuda.device().description() + ")"
            + (cuda.cpuOnly().isEmpty() ? "" : "; on the CPU: " + String.join(", ", cuda.cpuOnly())));
        return cuda;
      } catch (RuntimeException | LinkageError e) {
        LOG.log(System.Logger.Level.DEBUG, "the CUDA backend failed to start", e);
        problem = "the CUDA backend failed to start: " + e.getClass().getSimpleName() + ": "
            + String.valueOf(e.getMessage()).lines().findFirst().orElse("");
      }
    }
    Backend b = cpu(recipes);
    List<String> off = new ArrayList<>();
    if (b instanceof CheckedBackend checked) {
      checked.off().keySet().forEach(r -> off.add(r.cliName() + " (self-check failed)"));
    }
    logAuto("backend: " + b.name() + " on " + SelfCheck.runtime() + " (" + problem + ")"
        + (off.isEmpty() ? "" : "; on the reference: " + String.join(", ", off)));
    return b;
  }

  private static void logAuto(String line) {
    if (!autoLogged) {
      autoLogged = true;
      LOG.log(System.Logger.Level.INFO, line);
    }
  }

  private static Backend chooseCpu(Set<Recipe> checkFirst) {
    if (installed != null) {
      return checked(installed, installed, checkFirst);
    }
    if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
      return fallBack("the jdk.incubator.vector module is not loaded (run java with --add-modules=jdk.incubator.vector)");
    }
    try {
      Class<?> c = Class.forName(SIMD_CLASS);
      int bits = (int) c.getMethod("preferredBitSize").invoke(null);
      if (bits < MIN_VECTOR_BITS) {
        return fallBack("this CPU's preferred vectors are " + bits + " bits; the SIMD kernels need " + MIN_VECTOR_BITS);
      }
      Backend simd = (Backend) c.getConstructor().newInstance();
      return checked(simd, isolatedCopy(), checkFirst);
    } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
      Throwable cause = e instanceof InvocationTargetException i ? i.getCause() : e;
      return fallBack("the SIMD backend failed to load: " + SelfCheck.firstLine(cause));
    }
  }

  /**
   * The SIMD backend's classes loaded once more, by a class loader of their own, for the self-check to
   * run. Its samples of every dtype and shape then leave alone the branch and type profiles of the
   * classes that quantize the job's shards: C2 compiles every path a profile has seen, and with f16 and
   * f32 seen the affine kernels' loops stopped inlining their rounding and boxed vectors (a bf16 job
   * ran 34-43% slower on Java 17, int8 and intx, measured). The copy is the same bytes on the same JVM, so it fails where they fail.
   */
  private static Backend isolatedCopy() throws ReflectiveOperationException {
    ClassLoader parent = Backends.class.getClassLoader();
    String simdPackage = SIMD_CLASS.substring(0, SIMD_CLASS.lastIndexOf('.') + 1);
    ClassLoader apart = new ClassLoader("shardquant-self-check", parent) {
      @Override
      protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
        if (!name.startsWith(simdPackage)) {
          return super.loadClass(name, resolve);
        }
        synchronized (getClassLoadingLock(name)) {
          Class<?> c = findLoadedClass(name);
          if (c == null) {
            try (java.io.InputStream in = parent.getResourceAsStream(name.replace('.', '/') + ".class")) {
              if (in == null) {
                throw new ClassNotFoundException(name);
              }
              byte[] bytes = in.readAllBytes();
              c = defineClass(name, bytes, 0, bytes.length);
            } catch (java.io.IOException e) {
              throw new ClassNotFoundException(name, e);
            }
          }
          if (resolve) {
            resolveClass(c);
          }
          return c;
        }
      }
    };
    return (Backend) apart.loadClass(SIMD_CLASS).getConstructor().newInstance();
  }

  /**
   * {@code fast}, each recipe it has a kernel for first held against the reference by
   * {@link SelfCheck#awkward()} samples run on {@code checkedCopy} ({@code fast} itself, or its
   * {@link #isolatedCopy()}): those that differ or throw run on the reference, named in one warning with
   * the Java version and why; where none passes, the reference alone.
   */
  private static Backend checked(Backend fast, Backend checkedCopy, Set<Recipe> checkFirst) {
    List<Recipe> recipes = new ArrayList<>();
    Set<Recipe> later = EnumSet.noneOf(Recipe.class);
    for (Recipe r : Recipe.values()) {
      if (!fast.nameFor(r).equals(ReferenceBackend.INSTANCE.name())) {
        (checkFirst.contains(r) ? recipes : later).add(r);
      }
    }
    Map<Recipe, String> failed = SelfCheck.failures(recipes, SelfCheck.awkward(), ReferenceBackend.INSTANCE,
        checkedCopy::quantize, checkedCopy::firstPass);
    if (!failed.isEmpty()) {
      // one line, recipes grouped by reason (a missing method fails them all the same way)
      Map<String, List<String>> byReason = new LinkedHashMap<>();
      failed.forEach((r, why) -> byReason.computeIfAbsent(why, k -> new ArrayList<>()).add(r.cliName()));
      List<String> parts = new ArrayList<>();
      byReason.forEach((why, names) -> parts.add(String.join(", ", names) + ": " + why));
      String reason = "the " + fast.name() + " kernels failed their self-check against the reference ("
          + String.join("; ", parts) + ")";
      if (failed.size() == recipes.size() && later.isEmpty()) {
        return fallBack(System.Logger.Level.WARNING, reason);
      }
      LOG.log(System.Logger.Level.WARNING, "shardquant: on " + SelfCheck.runtime() + " " + reason + "; "
          + String.join(", ", failed.keySet().stream().map(Recipe::cliName).toList()) + " run on the scalar reference");
    }
    return new CheckedBackend(fast, ReferenceBackend.INSTANCE, failed, later,
        r -> SelfCheck.failures(List.of(r), SelfCheck.awkward(), ReferenceBackend.INSTANCE, checkedCopy::quantize,
            checkedCopy::firstPass).get(r));
  }

  private static Backend fallBack(String why) {
    return fallBack(System.Logger.Level.INFO, why);
  }

  private static Backend fallBack(System.Logger.Level level, String why) {
    simdProblem = why;
    LOG.log(level, "CPU SIMD kernels off on " + SelfCheck.runtime() + ", the scalar reference runs: " + why);
    return ReferenceBackend.INSTANCE;
  }
}
