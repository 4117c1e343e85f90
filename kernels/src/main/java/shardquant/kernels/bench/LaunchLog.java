package shardquant.kernels.bench;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import shardquant.kernels.backend.cuda.CudaDevice;
import shardquant.kernels.backend.cuda.ForwardingCudaDevice;

/**
 * A {@link CudaDevice} that forwards every call and remembers each kernel's distinct launch
 * configurations (grid, block, dynamic shared memory) with their launch counts, for {@link CudaBench}'s
 * lines: what a GPU run must show first is how much of the GPU each launch can fill.
 */
final class LaunchLog extends ForwardingCudaDevice {
  /** One launch shape of a kernel. */
  record Config(int grid, int block, int dynamicShared) {}

  private final CudaDevice d;
  private final Map<String, Map<Config, Integer>> launches = new TreeMap<>();

  LaunchLog(CudaDevice d) {
    super(d);
    this.d = d;
  }

  /**
   * Per kernel launched, per distinct configuration (most launches first, at most 4):
   * {@code bench <what> cuda launch <kernel>: grid G, block B, D B dynamic shared (N launches); R registers,
   * L B local per thread, S B static shared per block, at most M threads a block} (the last part from the
   * module, or "not known" where the device cannot say).
   */
  synchronized List<String> lines(String what) {
    List<String> out = new ArrayList<>();
    launches.forEach((kernel, configs) -> {
      CudaDevice.FunctionAttributes a = d.attributes(kernel);
      String module = a == null ? "registers and local memory not known on " + d.description()
          : String.format(Locale.ROOT, "%d registers, %d B local per thread, %d B static shared per block, at most %d threads a block",
              a.registers(), a.localBytes(), a.staticSharedBytes(), a.maxThreadsPerBlock());
      configs.entrySet().stream().sorted(Map.Entry.<Config, Integer>comparingByValue().reversed()).limit(4).forEach(e ->
          out.add(String.format(Locale.ROOT, "bench %s cuda launch %s: grid %d, block %d, %d B dynamic shared (%d launches); %s",
              what, kernel, e.getKey().grid(), e.getKey().block(), e.getKey().dynamicShared(), e.getValue(), module)));
    });
    return out;
  }

  @Override
  public void launch(Stream s, String kernel, int gridX, int blockX, int dynamicSharedBytes, Object... args) {
    synchronized (this) {
      launches.computeIfAbsent(kernel, k -> new LinkedHashMap<>()).merge(new Config(gridX, blockX, dynamicSharedBytes), 1, Integer::sum);
    }
    super.launch(s, kernel, gridX, blockX, dynamicSharedBytes, args);
  }
}
