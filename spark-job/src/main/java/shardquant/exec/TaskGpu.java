package shardquant.exec;

import java.util.Collection;
import java.util.Map;
import org.apache.spark.SparkContext;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.resource.ResourceInformation;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerApplicationEnd;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.backend.cuda.CudaDevices;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.select.Backends;

/**
 * The GPU a Spark task runs on, by the spark-rapids conventions: where the cluster schedules GPUs
 * ({@code spark.executor.resource.gpu.amount}, {@code spark.task.resource.gpu.amount}), the task's
 * {@code TaskContext.resources()} name its GPU, mapped to a CUDA ordinal through this executor's
 * {@code CUDA_VISIBLE_DEVICES}; in local mode and on clusters that schedule no GPUs (setting GPU
 * resources in local mode makes it hang), device 0.
 */
public final class TaskGpu {
  private TaskGpu() {}

  /** Spark setting: shards on one GPU at once (default {@link Backends#TASKS_PER_GPU}). */
  public static final String TASKS_PER_GPU = "spark.shardquant.cuda.tasksPerGpu";

  /**
   * The backend named {@code backend} for the running task, on the task's GPU where it uses one, with the
   * job's {@link #TASKS_PER_GPU} (it counts where this JVM's GPU backend starts: one per GPU per JVM);
   * where this call starts the CPU backend, only the job's {@code recipes} are self-checked up front.
   */
  static Backend backend(String backend, Collection<Recipe> recipes) {
    SparkEnv env = SparkEnv.get();
    return Backends.forName(backend, ordinal(TaskContext.get(), System.getenv("CUDA_VISIBLE_DEVICES")),
        tasksPerGpu(env == null ? null : env.conf().get(TASKS_PER_GPU, null)), recipes);
  }

  /**
   * When {@code sc}'s application ends (also a failed one), frees what this JVM's GPU backends keep on
   * their devices for it between stages ({@link Backends#jobEnded}): in local mode the executors are this
   * JVM; a cluster's executors end with the application.
   */
  public static void releaseAtEnd(SparkContext sc) {
    String app = sc.applicationId();
    sc.addSparkListener(new SparkListener() {
      @Override
      public void onApplicationEnd(SparkListenerApplicationEnd end) {
        Backends.jobEnded(app);
      }
    });
  }

  /** {@code setting}'s number, or the default where it is unset or not a number (as Integer.getInteger reads it). */
  static int tasksPerGpu(String setting) {
    if (setting != null) {
      try {
        return Integer.decode(setting);
      } catch (NumberFormatException e) {
        // not a number: the default
      }
    }
    return Backends.TASKS_PER_GPU;
  }

  static int ordinal(TaskContext task, String cudaVisibleDevices) {
    if (task == null) {
      return 0;
    }
    return ordinal(scala.jdk.javaapi.CollectionConverters.asJava(task.resources()), cudaVisibleDevices);
  }

  /** The CUDA ordinal of the first GPU in {@code resources}, or 0 when the task was given none. */
  static int ordinal(Map<String, ResourceInformation> resources, String cudaVisibleDevices) {
    ResourceInformation gpu = resources.get("gpu");
    if (gpu == null || gpu.addresses().length == 0) {
      return 0;
    }
    return CudaDevices.ordinalFor(gpu.addresses()[0], cudaVisibleDevices);
  }
}
