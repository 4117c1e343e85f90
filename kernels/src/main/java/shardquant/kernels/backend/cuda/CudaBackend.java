package shardquant.kernels.backend.cuda;

import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.backend.Backends;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * The CUDA backend: each recipe with a kernel in src/main/cuda runs on one GPU ({@link CudaDevice});
 * recipes without one, and shards holding NaN or infinity (which the CPU backend refuses with the
 * reference's message), run on {@link Backends#cpu()}. One instance per GPU per JVM, shared by every
 * task of the executor; at most {@link #tasksPerGpu} shards are on the GPU at once (property
 * {@code shardquant.cuda.tasksPerGpu}, default 2: one uploading while the other computes), so more
 * concurrent Spark tasks than that queue here instead of exhausting device memory.
 */
public final class CudaBackend implements Backend {
  /** System property: shards on one GPU at once. */
  public static final String TASKS_PER_GPU = "shardquant.cuda.tasksPerGpu";
  private static final Map<Integer, CudaBackend> INSTANCES = new ConcurrentHashMap<>();

  private final CudaDevice device;
  private final Gpu gpu;
  private final Semaphore slots;
  private final int tasksPerGpu;
  private final Map<Recipe, CudaRecipe> recipes = new EnumMap<>(Recipe.class);

  CudaBackend(CudaDevice device, int tasksPerGpu) {
    this(device, tasksPerGpu, CudaShard.CHUNK_BYTES);
  }

  /** {@code chunkBytes}: the upload chunk (tests make it small to exercise double buffering). */
  CudaBackend(CudaDevice device, int tasksPerGpu, long chunkBytes) {
    if (tasksPerGpu < 1) {
      throw new IllegalArgumentException(TASKS_PER_GPU + " must be at least 1, got " + tasksPerGpu);
    }
    this.device = device;
    this.gpu = new Gpu(device, chunkBytes);
    this.tasksPerGpu = tasksPerGpu;
    this.slots = new Semaphore(tasksPerGpu, true);
    // One line per recipe with a CUDA kernel (the kernels' .cu files hold the numerics comments).
    recipes.put(Recipe.INT8_WEIGHT_ONLY, new CudaInt8());
    recipes.put(Recipe.INT8_DYNAMIC, new CudaInt8());
    recipes.put(Recipe.NF4, new CudaNf4());
  }

  /** The backend on CUDA device 0. */
  public static CudaBackend instance() {
    return instance(0);
  }

  /** The backend on CUDA device {@code ordinal} (as numbered among the visible devices), one per JVM. */
  public static CudaBackend instance(int ordinal) {
    return INSTANCES.computeIfAbsent(ordinal,
        o -> new CudaBackend(JCudaDevice.open(o), Integer.getInteger(TASKS_PER_GPU, 2)));
  }

  public CudaDevice device() {
    return device;
  }

  public int tasksPerGpu() {
    return tasksPerGpu;
  }

  @Override
  public String name() {
    return "cuda";
  }

  @Override
  public String nameFor(Recipe recipe) {
    return recipes.containsKey(recipe) ? name() : Backends.cpu().nameFor(recipe);
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    CudaRecipe r = recipes.get(c.recipe());
    if (r == null || !CudaKernels.takes(rows.dtype()) || rows.rank() != 2) {
      return Backends.cpu().quantize(rows, c, global, stats);
    }
    QuantizedTensor q;
    slots.acquireUninterruptibly();
    try {
      q = r.quantize(gpu, rows, c, global, stats);
    } finally {
      slots.release();
    }
    return q != null ? q : Backends.cpu().quantize(rows, c, global, stats);
  }

  @Override
  public float[] nf4BlockAbsmax(Tensor rows) {
    if (!(recipes.get(Recipe.NF4) instanceof CudaNf4 nf4) || !CudaKernels.takes(rows.dtype()) || rows.rank() != 2) {
      return Backends.cpu().nf4BlockAbsmax(rows);
    }
    float[] absmax;
    slots.acquireUninterruptibly();
    try {
      absmax = nf4.blockAbsmax(gpu, rows);
    } finally {
      slots.release();
    }
    return absmax != null ? absmax : Backends.cpu().nf4BlockAbsmax(rows);
  }

  @Override
  public String toString() {
    return "cuda on " + device.description();
  }
}
