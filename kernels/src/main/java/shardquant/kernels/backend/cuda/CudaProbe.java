package shardquant.kernels.backend.cuda;

import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Whether the CUDA backend can run in this JVM, asked once and cached: JCuda's natives load (they need
 * the NVIDIA driver's {@code libcuda.so.1}), {@code cuInit} succeeds, device 0 exists with compute
 * capability 8.0 or newer, and this build holds PTX for it. Otherwise {@link #problem()} says why in
 * a few words; the exception behind it, when there is one, is logged at DEBUG (FINE).
 */
public final class CudaProbe {
  private static final System.Logger LOG = System.getLogger(CudaProbe.class.getName());

  /** The probe's answer: the device when available, else why not. */
  public record Answer(String device, int major, int minor, int arch, String problem) {
    public boolean available() {
      return problem == null;
    }
  }

  static final String MODULE = "int8_rowwise"; // the module whose PTX shows the build has any
  private static volatile Answer answer;

  private CudaProbe() {}

  public static boolean available() {
    return answer().available();
  }

  /** Why CUDA cannot run here, or null when it can. */
  public static String problem() {
    return answer().problem();
  }

  public static Answer answer() {
    Answer a = answer;
    if (a == null) {
      synchronized (CudaProbe.class) {
        if (answer == null) {
          answer = probe();
        }
        a = answer;
      }
    }
    return a;
  }

  private static Answer probe() {
    try {
      JCudaDriver.setExceptionsEnabled(false);
      int rc = JCudaDriver.cuInit(0);
      if (rc != CUresult.CUDA_SUCCESS) {
        return unavailable("cuInit failed with " + CUresult.stringFor(rc) + ": the NVIDIA driver finds no usable GPU");
      }
      int[] count = {0};
      rc = JCudaDriver.cuDeviceGetCount(count);
      if (rc != CUresult.CUDA_SUCCESS || count[0] == 0) {
        return unavailable("the NVIDIA driver reports no CUDA device (" + CUresult.stringFor(rc) + ")");
      }
      CUdevice dev = new CUdevice();
      check(JCudaDriver.cuDeviceGet(dev, 0), "cuDeviceGet");
      byte[] name = new byte[256];
      check(JCudaDriver.cuDeviceGetName(name, name.length, dev), "cuDeviceGetName");
      int[] major = {0};
      int[] minor = {0};
      check(JCudaDriver.cuDeviceGetAttribute(major, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "cuDeviceGetAttribute");
      check(JCudaDriver.cuDeviceGetAttribute(minor, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "cuDeviceGetAttribute");
      String device = new String(name, 0, nulAt(name), java.nio.charset.StandardCharsets.US_ASCII)
          + " (compute capability " + major[0] + "." + minor[0] + ")";
      int arch = CudaModules.archFor(major[0], minor[0]);
      if (arch < 0) {
        return new Answer(device, major[0], minor[0], arch, device + " is too old: the CUDA kernels need compute capability 8.0 or newer");
      }
      if (CudaModules.ptx(MODULE, arch) == null) {
        return new Answer(device, major[0], minor[0], arch, "this build has no PTX (" + CudaModules.resource(MODULE, "compute_" + arch)
            + "): it was built without nvcc; rebuild with the CUDA toolkit installed");
      }
      return new Answer(device, major[0], minor[0], arch, null);
    } catch (LinkageError e) {
      // UnsatisfiedLinkError on the first touch, NoClassDefFoundError after it. JCuda's message spans
      // many lines and names the temporary copy of its own library: the details are for debugging.
      LOG.log(System.Logger.Level.DEBUG, "CUDA probe: JCuda's native library did not load", e);
      String m = String.valueOf(e.getMessage());
      return unavailable(m.contains("libcuda.so.1: cannot open shared object file") ? "no CUDA driver: libcuda.so.1 not found"
          : "JCuda's native library did not load (" + e.getClass().getSimpleName() + ": " + m.lines().findFirst().orElse("")
              + ")");
    } catch (RuntimeException e) {
      LOG.log(System.Logger.Level.DEBUG, "CUDA probe: JCuda failed to start", e);
      return unavailable("JCuda failed to start: " + e);
    }
  }

  private static void check(int rc, String call) {
    if (rc != CUresult.CUDA_SUCCESS) {
      throw new IllegalStateException(call + " failed with " + CUresult.stringFor(rc));
    }
  }

  private static int nulAt(byte[] s) {
    int i = 0;
    while (i < s.length && s[i] != 0) {
      i++;
    }
    return i;
  }

  private static Answer unavailable(String why) {
    return new Answer(null, 0, 0, -1, why);
  }
}
