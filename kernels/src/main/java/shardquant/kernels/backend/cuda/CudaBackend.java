package shardquant.kernels.backend.cuda;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.LongAdder;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.backend.SelfCheck;
import shardquant.kernels.quant.Int4Layout;
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
 * reference's message), run on the CPU backend it is given when it is made (its oracle in the
 * self-check too; it never asks for one). Its maker keeps one instance per GPU per JVM, shared by every
 * task of the executor; at most {@code tasksPerGpu} shards are on the GPU at once (one uploading while
 * another computes), so more concurrent Spark tasks than that queue here instead of exhausting device memory.
 *
 * <p>Before first use on a GPU, {@link #selfCheck} quantizes small synthetic shards of every recipe
 * on the device and on the CPU; a recipe whose bytes or sums differ runs on the CPU from then on, with
 * a warning. A new driver, GPU or build can then cost speed, never a wrong checkpoint.
 */
public final class CudaBackend implements Backend {
  private final Gpu gpu;
  /** Runs what the GPU does not, and is the self-check's oracle. */
  private final Backend cpu;
  private final Semaphore slots;
  private final int tasksPerGpu;
  private final Map<Recipe, CudaRecipe> recipes = new EnumMap<>(Recipe.class);
  private final Map<Recipe, String> disabled = new EnumMap<>(Recipe.class);
  private volatile String failure;
  private final LongAdder cpuAnswers = new LongAdder();
  private static final System.Logger LOG = System.getLogger(CudaBackend.class.getName());
  /**
   * Input shards kept between a job's stages take at most 1/{@value} of the GPU's memory: the rest leaves
   * room for {@code tasksPerGpu} shards at work (each its input and outputs, rounded up to the device
   * allocator's power-of-two size classes, which this budget does not count) and for other users.
   */
  static final int RESIDENT_FRACTION = 4;

  CudaBackend(CudaDevice device, Backend cpu, int tasksPerGpu) {
    this(device, cpu, tasksPerGpu, CudaShard.CHUNK_BYTES);
  }

  /** {@code chunkBytes}: the upload chunk (tests make it small to exercise double buffering). */
  CudaBackend(CudaDevice device, Backend cpu, int tasksPerGpu, long chunkBytes) {
    this(device, cpu, tasksPerGpu, chunkBytes, device.totalMemory() / RESIDENT_FRACTION);
  }

  /**
   * {@code residentBytes}: at most this much device memory holds input shards kept between a job's
   * stages ({@link ResidentInputs}; 0 keeps none).
   */
  CudaBackend(CudaDevice device, Backend cpu, int tasksPerGpu, long chunkBytes, long residentBytes) {
    if (tasksPerGpu < 1) {
      throw new IllegalArgumentException("tasks per GPU must be at least 1, got " + tasksPerGpu);
    }
    this.gpu = new Gpu(device, chunkBytes, new ResidentInputs(residentBytes));
    this.cpu = cpu;
    this.slots = new Semaphore(tasksPerGpu, true);
    this.tasksPerGpu = tasksPerGpu;
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

  /**
   * A backend on {@code device}, self-checked against {@code cpu}, which also runs the recipes and shards
   * the GPU does not; at most {@code tasksPerGpu} shards on the GPU at once.
   */
  public static CudaBackend start(CudaDevice device, Backend cpu, int tasksPerGpu) {
    CudaBackend b = new CudaBackend(device, cpu, tasksPerGpu);
    b.selfCheck(cpu);
    return b;
  }

  /** {@link #start} on CUDA device {@code ordinal} (as numbered among the visible devices). */
  public static CudaBackend open(int ordinal, Backend cpu, int tasksPerGpu) {
    return start(JCudaDevice.open(ordinal), cpu, tasksPerGpu);
  }

  /**
   * Quantizes small synthetic shards of each recipe here and on {@code cpu}; a recipe whose parts or
   * verification sums differ, or whose kernel fails, runs on the CPU from then on. Returns those
   * recipes with the reason, also logged as a warning.
   */
  Map<Recipe, String> selfCheck(Backend cpu) {
    Map<Recipe, String> failed = SelfCheck.failures(new ArrayList<>(recipes.keySet()), SelfCheck.regular(), cpu,
        this::quantizeOnDevice, this::firstPassOnDevice);
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

  /** Shards on the GPU at once, at most. */
  public int tasksPerGpu() {
    return tasksPerGpu;
  }

  /**
   * This backend's recipes (as self-checked, not checked again) and GPU slots, on {@code wrapper}: a
   * device that forwards to this one's GPU, such as the bench's recorder of launch configurations.
   */
  public CudaBackend on(CudaDevice wrapper) {
    return new CudaBackend(this, wrapper);
  }

  private CudaBackend(CudaBackend of, CudaDevice wrapper) {
    this.gpu = new Gpu(wrapper, of.gpu.chunkBytes());
    this.cpu = of.cpu;
    this.slots = of.slots;
    this.tasksPerGpu = of.tasksPerGpu;
    this.recipes.putAll(of.recipes);
    this.disabled.putAll(of.disabled);
  }

  /**
   * Frees the input shards kept on this GPU for job {@code job} (every job's where null): the job ended,
   * so a shard whose second pass ran elsewhere, or never ran, is not taken any more. Returns how many.
   */
  public int releaseResident(String job) {
    return gpu.resident().release(job);
  }

  /**
   * Input shards kept on this GPU by a first pass so far, and of those taken by a second pass (each an
   * upload saved), and kept now: tests check a job on one GPU uploads each shard once.
   */
  public long[] residentCounts() {
    ResidentInputs r = gpu.resident();
    return new long[] {r.offered(), r.hits(), r.size()};
  }

  /** What this GPU keeps between stages ({@link ResidentInputs}), for tests. */
  ResidentInputs resident() {
    return gpu.resident();
  }

  /** tinygemm int4 layout conversion and dequantization on this backend's device. */
  public CudaInt4Repack int4Repack() {
    return new CudaInt4Repack(gpu);
  }

  /**
   * {@code t} converted to {@code target} on this GPU ({@link CudaInt4Repack#repack}: the Java repack's
   * bytes and refusals), holding one of the GPU's shard slots ({@code tasksPerGpu}) like a shard does.
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
    return recipes.containsKey(recipe) && failure == null ? name() : cpu.nameFor(recipe);
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
    return cpu.quantize(rows, c, global, stats);
  }

  /** The shard on the GPU, or null where it must run on the CPU; device errors propagate. */
  private QuantizedTensor quantizeOnDevice(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    return onDevice(rows, c, r -> r.quantize(gpu, rows, c, global, stats));
  }

  @Override
  public float[] firstPass(QuantConfig c, Tensor rows) {
    if (failure == null) {
      try {
        float[] partial = firstPassOnDevice(c, rows);
        if (partial != null) {
          return partial;
        }
      } catch (RuntimeException e) {
        fail(e);
      }
    }
    cpuAnswers.increment();
    return cpu.firstPass(c, rows);
  }

  private float[] firstPassOnDevice(QuantConfig c, Tensor rows) {
    return onDevice(rows, c, r -> r.firstPass(gpu, rows, c));
  }

  /** {@code work} with the recipe's kernels in one of the GPU's slots; null where the kernels do not take the shard. */
  private <T> T onDevice(Tensor rows, QuantConfig c, java.util.function.Function<CudaRecipe, T> work) {
    CudaRecipe r = recipes.get(c.recipe());
    if (r == null || !CudaKernels.takes(rows.dtype()) || rows.rank() != 2) {
      return null;
    }
    slots.acquireUninterruptibly();
    try {
      return work.apply(r);
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
      try {
        gpu.resident().release(null); // nothing runs here any more
      } catch (RuntimeException again) {
        // the context may be unusable: its memory goes with it
      }
    }
  }

  /** Why this backend stopped using its GPU, or null while it uses it. */
  public String failure() {
    return failure;
  }

  /**
   * Calls of {@link #quantize} and {@link #firstPass} answered by the CPU backend so far: the recipe
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
