package shardquant.kernels.backend.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The PTX the build made from {@code src/main/cuda} (see that folder's README): resource
 * {@code NAME.compute_XY.ptx} beside this class, for each virtual architecture in {@link #ARCHS}.
 */
public final class CudaModules {
  /** The PTX targets the build compiles, oldest first; the driver JIT-compiles them for newer GPUs. */
  static final int[] ARCHS = {80, 90};

  /**
   * Every module (src/main/cuda/NAME.cu) and the kernels it defines, which {@link JCudaDevice} loads;
   * CudaPtxTest checks this list against the sources.
   */
  static final Map<String, List<String>> MODULES_AND_KERNELS = Map.of(
      "int8_rowwise", List.of("int8_rowwise"),
      "int4_tinygemm", List.of("int4_tile_packed", "int4_cpu"),
      "int4_unpack", List.of("int4_unpack_codes", "int4_pack_codes", "int4_unpack_scale_zero", "int4_pack_scale_zero", "int4_dequantize"),
      "intx_groupwise", List.of("intx_groupwise"),
      "nf4", List.of("nf4_block_absmax", "nf4_quantize", "nf4_stats"));

  static final List<String> MODULES = MODULES_AND_KERNELS.keySet().stream().sorted().toList();

  static List<String> kernels(String module) {
    return MODULES_AND_KERNELS.get(module);
  }

  private CudaModules() {}

  /** The resource name of module {@code name} for {@code arch} ({@code compute_80}). */
  public static String resource(String name, String arch) {
    return "/shardquant/kernels/backend/cuda/" + name + "." + arch + ".ptx";
  }

  /** The newest PTX target a GPU of compute capability {@code major.minor} can run, or -1 if none. */
  static int archFor(int major, int minor) {
    int cc = major * 10 + minor;
    return Arrays.stream(ARCHS).filter(a -> a <= cc).max().orElse(-1);
  }

  /** Module {@code name}'s PTX for {@code arch} as cuModuleLoadData wants it (NUL-terminated), or null if not built. */
  static byte[] ptx(String name, int arch) {
    try (InputStream in = CudaModules.class.getResourceAsStream(resource(name, "compute_" + arch))) {
      if (in == null) {
        return null;
      }
      byte[] text = in.readAllBytes();
      return Arrays.copyOf(text, text.length + 1);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
