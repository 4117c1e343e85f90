package shardquant.kernels.backend.cuda;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.LongAdder;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.backend.Backends;
import shardquant.kernels.backend.SelfCheck;
import shardquant.kernels.layout.Int4Layout;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.repack.TinygemmInt4Tensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * The CUDA backend: each recipe with a kernel in src/main/cuda runs on one GPU ({@link CudaDevice});
 * recipes without one, and shards holding NaN or infinity (which the CPU backend refuses with the
 * reference's message), run on {@link Backends#cpu()}. One instance per GPU per JVM, shared by every
 * task of the executor; at most a few shards are on the GPU at once (system property
 * {@value #TASKS_PER_GPU}, default 2: one uploading while the other computes), so more
 * concurrent Spark tasks than that queue here instead of exhausting device memory.
 *
 * <p>Before first use on a GPU, {@link #selfCheck} quantizes small synthetic shards of every recipe
 * on the device and on the CPU; a recipe whose bytes or sums differ runs on the CPU from then on, with
 * a warning. A new driver, GPU or build can then cost speed, never a wrong checkpoint.
 */
public final class CudaBackend implements Backend {
  /** System property: shards on one GPU at once. */
  public static final String TASKS_PER_GPU = "shardquant.cuda.tasksPerGpu";
  private static final Map<Integer, CudaBackend> INSTANCES = new ConcurrentHashMap<>();

  private final Gpu gpu;
  private final Semaphore slots;
  private final Map<Recipe, CudaRecipe> recipes = new EnumMap<>(Recipe.class);
  private final Map<Recipe, String> disabled = new EnumMap<>(Recipe.class);
  private volatile String failure;
  private final LongAdder cpuAnswers = new LongAdder();
  private static final System.Logger LOG = System.getLogger(CudaBackend.class.getName());

  CudaBackend(CudaDevice device, int tasksPerGpu) {
    this(device, tasksPerGpu, CudaShard.CHUNK_BYTES);
  }

  /** {@code chunkBytes}: the upload chunk (tests make it small to exercise double buffering). */
  CudaBackend(CudaDevice device, int tasksPerGpu, long chunkBytes) {
    if (tasksPerGpu < 1) {
      throw new IllegalArgumentException(TASKS_PER_GPU + " must be at least 1, got " + tasksPerGpu);
    }
    this.gpu = new Gpu(device, chunkBytes);
    this.slots = new Semaphore(tasksPerGpu, true);
    // One line per recipe with a CUDA kernel (the kernels' .cu files hold the numerics comments).
    recipes.put(Recipe.INT8_WEIGHT_ONLY, new CudaInt8());
    recipes.put(Recipe.INT8_DYNAMIC, new CudaInt8());
    for (Recipe r : Recipe.values()) { // every tinygemm int4 recipe: CudaInt4 has a kernel per recipe layout
      if (Int4Layout.of(r) != null) {
        recipes.put(r, new CudaInt4(Int4Layout.of(r)));
      }
    }
    recipes.put(Recipe.INT8_DYN_ACT_INT4_WEIGHT, new CudaIntx());
    recipes.put(Recipe.INTX_WEIGHT_ONLY, new CudaIntx());
    recipes.put(Recipe.NF4, new CudaNf4());
  }

  /** The backend on CUDA device 0. */
  public static CudaBackend instance() {
    return instance(0);
  }

  /**
   * Makes {@code device} this JVM's CUDA device {@code ordinal} (after the same self-check), in place of
   * the GPU the driver would give: for tests, which run whole jobs on the emulator, and for embedding.
   */
  public static CudaBackend install(int ordinal, CudaDevice device) {
    CudaBackend b = checked(device);
    INSTANCES.put(ordinal, b);
    return b;
  }

  /** A backend on {@code device} with the configured shard limit, self-checked against the CPU. */
  private static CudaBackend checked(CudaDevice device) {
    CudaBackend b = new CudaBackend(device, Integer.getInteger(TASKS_PER_GPU, 2));
    b.selfCheck(Backends.cpu());
    return b;
  }

  /** Removes what {@link #install} put at {@code ordinal}. */
  public static void uninstall(int ordinal) {
    INSTANCES.remove(ordinal);
  }

  /** Whether device {@code ordinal} was {@link #install}ed or opened in this JVM. */
  public static boolean present(int ordinal) {
    return INSTANCES.containsKey(ordinal);
  }

  /** The backend on CUDA device {@code ordinal} (as numbered among the visible devices), one per JVM. */
  public static CudaBackend instance(int ordinal) {
    return INSTANCES.computeIfAbsent(ordinal, o -> checked(JCudaDevice.open(o)));
  }

  /**
   * Quantizes small synthetic shards of each recipe here and on {@code cpu}; a recipe whose parts or
   * verification sums differ, or whose kernel fails, runs on the CPU from then on. Returns those
   * recipes with the reason, also logged as a warning.
   */
  Map<Recipe, String> selfCheck(Backend cpu) {
    Map<Recipe, String> failed = SelfCheck.failures(new ArrayList<>(recipes.keySet()), SelfCheck.regular(), cpu,
        this::quantizeOnDevice, this::nf4BlockAbsmaxOnDevice);
    failed.forEach((recipe, problem) -> {
      recipes.remove(recipe);
      disabled.put(recipe, problem);
      LOG.log(System.Logger.Level.WARNING, "shardquant: the CUDA kernel for " + recipe.cliName() + " on " + gpu.device().description()
          + " disagrees with the CPU (" + problem + "); " + recipe.cliName() + " runs on the CPU");
    });
    return Map.copyOf(disabled);
  }

  /** The recipes {@link #selfCheck} moved to the CPU, with the reason; tests on the emulator expect none. */
  public Map<Recipe, String> selfCheckFailures() {
    return Map.copyOf(disabled);
  }

  /** Recipes that run on the CPU on this backend: no kernel, or a failed {@link #selfCheck}. */
  public List<String> cpuOnly() {
    List<String> out = new ArrayList<>();
    for (Recipe r : Recipe.values()) {
      if (!recipes.containsKey(r)) {
        out.add(r.cliName() + (disabled.containsKey(r) ? " (self-check failed)" : ""));
      }
    }
    return out;
  }

  public CudaDevice device() {
    return gpu.device();
  }

  /** tinygemm int4 layout conversion and dequantization on this backend's device. */
  public CudaInt4Repack int4Repack() {
    return new CudaInt4Repack(gpu);
  }

  /**
   * {@code t} converted to {@code target} on this GPU ({@link CudaInt4Repack#repack}: the Java repack's
   * bytes and refusals), holding one of the GPU's shard slots ({@value #TASKS_PER_GPU}) like a shard does.
   */
  @Override
  public TinygemmInt4Tensor repack(TinygemmInt4Tensor t, Int4Layout target) {
    slots.acquireUninterruptibly();
    try {
      return int4Repack().repack(t, target);
    } finally {
      slots.release();
    }
  }

  /** Every part of host tensor {@code q} copied to this backend's device, bytes unchanged (close the result). */
  public CudaQuantizedTensor toDevice(QuantizedTensor q) {
    return CudaQuantizedTensor.upload(gpu, q);
  }

  @Override
  public String name() {
    return "cuda";
  }

  @Override
  public String nameFor(Recipe recipe) {
    return recipes.containsKey(recipe) && failure == null ? name() : Backends.cpu().nameFor(recipe);
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    if (failure == null && recipes.containsKey(c.recipe())) {
      try {
        QuantStats own = new QuantStats(); // merged only with a result, so a fallback never counts twice
        QuantizedTensor q = quantizeOnDevice(rows, c, global, own);
        if (q != null) {
          stats.merge(own);
          return q;
        }
      } catch (RuntimeException e) {
        fail(e);
      }
    }
    cpuAnswers.increment();
    return Backends.cpu().quantize(rows, c, global, stats);
  }

  /** The shard on the GPU, or null where it must run on the CPU; device errors propagate. */
  private QuantizedTensor quantizeOnDevice(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    CudaRecipe r = recipes.get(c.recipe());
    if (r == null || !CudaKernels.takes(rows.dtype()) || rows.rank() != 2) {
      return null;
    }
    slots.acquireUninterruptibly();
    try {
      return r.quantize(gpu, rows, c, global, stats);
    } finally {
      slots.release();
    }
  }

  @Override
  public float[] nf4BlockAbsmax(Tensor rows) {
    if (failure == null) {
      try {
        float[] absmax = nf4BlockAbsmaxOnDevice(rows);
        if (absmax != null) {
          return absmax;
        }
      } catch (RuntimeException e) {
        fail(e);
      }
    }
    cpuAnswers.increment();
    return Backends.cpu().nf4BlockAbsmax(rows);
  }

  private float[] nf4BlockAbsmaxOnDevice(Tensor rows) {
    if (!(recipes.get(Recipe.NF4) instanceof CudaNf4 nf4) || !CudaKernels.takes(rows.dtype()) || rows.rank() != 2) {
      return null;
    }
    slots.acquireUninterruptibly();
    try {
      return nf4.blockAbsmax(gpu, rows);
    } finally {
      slots.release();
    }
  }

  /**
   * A device error (a kernel fault leaves the CUDA context unusable; an allocation failed): from now on
   * every shard of this JVM runs on the CPU, which gives the same bytes; one warning says why.
   */
  private synchronized void fail(RuntimeException e) {
    if (failure == null) {
      failure = e.toString();
      LOG.log(System.Logger.Level.WARNING, "shardquant: the GPU " + gpu.device().description() + " failed (" + failure
          + "); this and every later shard of this JVM run on the CPU", e);
    }
  }

  /** Why this backend stopped using its GPU, or null while it uses it. */
  public String failure() {
    return failure;
  }

  /**
   * Calls of {@link #quantize} and {@link #nf4BlockAbsmax} answered by the CPU backend so far: the recipe
   * has no kernel here, the kernels do not take the shard (dtype, rank, NaN or infinity), or the GPU
   * failed ({@link #failure}), also midway through a shard. Tests check a shard ran on the GPU throughout.
   */
  public long cpuAnswers() {
    return cpuAnswers.sum();
  }

  @Override
  public String toString() {
    return "cuda on " + gpu.device().description();
  }
}
