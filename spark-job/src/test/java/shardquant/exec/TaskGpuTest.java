package shardquant.exec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Map;
import org.apache.spark.resource.ResourceInformation;
import org.junit.jupiter.api.Test;

/** A task's GPU: Spark's address mapped through CUDA_VISIBLE_DEVICES; device 0 without GPU scheduling. */
class TaskGpuTest {
  private static Map<String, ResourceInformation> gpus(String... addresses) {
    return Map.of("gpu", new ResourceInformation("gpu", addresses));
  }

  @Test
  void noGpuSchedulingMeansDeviceZero() {
    assertEquals(0, TaskGpu.ordinal((org.apache.spark.TaskContext) null, "3"));
    assertEquals(0, TaskGpu.ordinal(Map.of(), null));
    assertEquals(0, TaskGpu.ordinal(gpus(), null));
  }

  @Test
  void theTasksFirstGpuMapsThroughVisibleDevices() {
    assertEquals(2, TaskGpu.ordinal(gpus("2"), null));
    assertEquals(1, TaskGpu.ordinal(gpus("5", "6"), "4,5,6"));
    assertThrows(IllegalArgumentException.class, () -> TaskGpu.ordinal(gpus("1"), "4,5"));
  }

  @Test
  void theTasksPerGpuSettingReachesTheBackendAsANumber() {
    assertEquals(2, TaskGpu.tasksPerGpu(null));
    assertEquals(3, TaskGpu.tasksPerGpu("3"));
    assertEquals(2, TaskGpu.tasksPerGpu("two"));
    assertEquals(0, TaskGpu.tasksPerGpu("0"), "the CUDA backend refuses it, with the value");
  }
}
