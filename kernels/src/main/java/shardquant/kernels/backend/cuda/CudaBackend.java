package shardquant.kernels.backend.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Map;
import jcuda.Pointer;
import jcuda.Sizeof;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.JCudaDriver;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.backend.Backends;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * NOT FINISHED, NEVER RUN: written without a GPU. Reachable only through {@link Backends#forName} when
 * {@link CudaProbe#available()}. Runs {@code int8_rowwise_bf16} (src/main/cuda/int8_rowwise.cu) for
 * int8-weight-only and int8-dynamic on bfloat16 rows; everything else, and for now the verification
 * sums and the refusal of non-finite input, runs on {@link Backends#cpu()} (see src/main/cuda/README.md).
 */
public final class CudaBackend implements Backend {
  private static final int THREADS = 256;
  private static volatile CudaBackend instance;

  private final CUcontext context = new CUcontext();
  private final CUfunction int8 = new CUfunction();

  private CudaBackend(CudaProbe.Answer probe) {
    JCudaDriver.setExceptionsEnabled(true);
    CUdevice dev = new CUdevice();
    JCudaDriver.cuDeviceGet(dev, 0);
    JCudaDriver.cuDevicePrimaryCtxRetain(context, dev);
    JCudaDriver.cuCtxSetCurrent(context);
    CUmodule module = new CUmodule();
    JCudaDriver.cuModuleLoadData(module, CudaModules.ptx(CudaProbe.MODULE, probe.arch()));
    JCudaDriver.cuModuleGetFunction(int8, module, "int8_rowwise_bf16");
  }

  /** The one instance, on device 0; only where the probe found CUDA usable. */
  public static CudaBackend instance() {
    CudaProbe.Answer probe = CudaProbe.answer();
    if (!probe.available()) {
      throw new IllegalStateException("CUDA is unavailable: " + probe.problem());
    }
    CudaBackend b = instance;
    if (b == null) {
      synchronized (CudaBackend.class) {
        if (instance == null) {
          instance = new CudaBackend(probe);
        }
        b = instance;
      }
    }
    return b;
  }

  @Override
  public String name() {
    return "cuda";
  }

  @Override
  public String nameFor(Recipe recipe) {
    return runsOnDevice(recipe) ? name() : Backends.cpu().nameFor(recipe);
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    // The CPU result gives the refusals and the verification sums; the device gives qdata and scale.
    QuantizedTensor cpu = Backends.cpu().quantize(rows, c, global, stats);
    if (!runsOnDevice(c.recipe()) || rows.dtype() != DType.BF16) {
      return cpu;
    }
    Map<String, Tensor> parts = new LinkedHashMap<>(cpu.parts());
    Tensor[] qdataAndScale = int8RowwiseBf16(rows);
    parts.put("qdata", qdataAndScale[0]);
    parts.put("scale", qdataAndScale[1]);
    return new QuantizedTensor(c, rows.shape(), rows.dtype(), parts, cpu.device());
  }

  @Override
  public float[] nf4BlockAbsmax(Tensor rows) {
    return Backends.cpu().nf4BlockAbsmax(rows);
  }

  private static CUdeviceptr alloc(long bytes, List<CUdeviceptr> allocated) {
    CUdeviceptr p = new CUdeviceptr();
    JCudaDriver.cuMemAlloc(p, Math.max(1, bytes));
    allocated.add(p);
    return p;
  }

  private static boolean runsOnDevice(Recipe r) {
    return r == Recipe.INT8_WEIGHT_ONLY || r == Recipe.INT8_DYNAMIC;
  }

  /** qdata int8 [R, K] and scale float32 [R, 1] of finite bf16 rows (the caller has checked them). */
  synchronized Tensor[] int8RowwiseBf16(Tensor rows) {
    int r = Math.toIntExact(rows.rows());
    int k = Math.toIntExact(rows.cols());
    long n = (long) r * k;
    byte[] in = new byte[Math.toIntExact(n * 2)];
    rows.bytes().duplicate().get(in);
    byte[] q = new byte[Math.toIntExact(n)];
    byte[] scale = new byte[r * Sizeof.FLOAT];
    JCudaDriver.cuCtxSetCurrent(context);
    List<CUdeviceptr> allocated = new ArrayList<>();
    try {
      CUdeviceptr dx = alloc(in.length, allocated);
      CUdeviceptr dq = alloc(q.length, allocated);
      CUdeviceptr ds = alloc(scale.length, allocated);
      CUdeviceptr dc = alloc((long) r * Sizeof.INT, allocated); // clipped counts: for device-side verification, later
      JCudaDriver.cuMemcpyHtoD(dx, Pointer.to(in), in.length);
      Pointer params = Pointer.to(Pointer.to(dx), Pointer.to(new int[] {r}), Pointer.to(new int[] {k}), Pointer.to(dq),
          Pointer.to(ds), Pointer.to(dc));
      JCudaDriver.cuLaunchKernel(int8, r, 1, 1, THREADS, 1, 1, 0, null, params, null);
      JCudaDriver.cuCtxSynchronize();
      JCudaDriver.cuMemcpyDtoH(Pointer.to(q), dq, q.length);
      JCudaDriver.cuMemcpyDtoH(Pointer.to(scale), ds, scale.length);
    } finally {
      allocated.forEach(JCudaDriver::cuMemFree);
    }
    return new Tensor[] {
        Tensor.of(DType.I8, rows.shape(), ByteBuffer.wrap(q).order(ByteOrder.LITTLE_ENDIAN)),
        Tensor.of(DType.F32, new long[] {r, 1}, ByteBuffer.wrap(scale).order(ByteOrder.LITTLE_ENDIAN))};
  }
}
