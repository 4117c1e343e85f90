package shardquant.kernels.backend.cuda;

import java.util.Arrays;
import java.util.List;

/**
 * Which CUDA device a Spark task's GPU is. Spark hands a task GPU addresses from the discovery script
 * (conf/getGpusResources.sh prints nvidia-smi's indices, which number all of the node's GPUs), while
 * CUDA numbers only the devices {@code CUDA_VISIBLE_DEVICES} lets it see, in that variable's order. So
 * with {@code CUDA_VISIBLE_DEVICES=2,3} Spark's address "3" is CUDA device 1.
 */
public final class CudaDevices {
  private CudaDevices() {}

  /**
   * The CUDA ordinal of GPU {@code address} (as Spark's resource discovery named it), given this
   * process's {@code CUDA_VISIBLE_DEVICES} (null or blank when unset: then the address is the ordinal).
   */
  public static int ordinalFor(String address, String cudaVisibleDevices) {
    String a = address == null ? "" : address.strip();
    if (a.isEmpty()) {
      throw new IllegalArgumentException("Spark assigned this task a GPU with an empty address");
    }
    if (cudaVisibleDevices == null || cudaVisibleDevices.isBlank()) {
      try {
        return Integer.parseInt(a);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("Spark's GPU address '" + a + "' is not a device index and CUDA_VISIBLE_DEVICES is"
            + " not set to map it; make the discovery script print indices (conf/getGpusResources.sh does)");
      }
    }
    List<String> visible = Arrays.stream(cudaVisibleDevices.split(",")).map(String::strip).toList();
    int i = visible.indexOf(a);
    if (i < 0) {
      throw new IllegalArgumentException("Spark assigned GPU '" + a + "', which is not among CUDA_VISIBLE_DEVICES="
          + cudaVisibleDevices + "; the discovery script and CUDA_VISIBLE_DEVICES must name GPUs the same way");
    }
    return i;
  }
}
