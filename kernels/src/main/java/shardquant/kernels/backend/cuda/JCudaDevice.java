package shardquant.kernels.backend.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import java.util.function.LongFunction;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

/**
 * A GPU through JCuda's driver API. One per device per JVM ({@link #open}), sharing the device's primary
 * context across every task of the executor; every call first makes that context current on the calling
 * thread. Device and pinned allocations are cached by size class, so tasks reuse them instead of paying
 * cuMemAlloc/cuMemHostAlloc (both synchronize the device) per shard.
 *
 * <p>Written without a GPU at hand: the same host code runs in CI against the emulated device, but this
 * class itself has run only where the closing notes of issue 5 say it has.
 */
public final class JCudaDevice implements CudaDevice {
  private static final Map<Integer, JCudaDevice> OPEN = new ConcurrentHashMap<>();

  private final int ordinal;
  private final String description;
  private final long totalMemory;
  private final CUcontext context = new CUcontext();
  private final Map<String, CUfunction> functions = new HashMap<>();
  private final Pool<CUdeviceptr> freeDevice = new Pool<>(size -> {
    CUdeviceptr p = new CUdeviceptr();
    JCudaDriver.cuMemAlloc(p, size);
    return p;
  }, JCudaDriver::cuMemFree);
  private final Pool<Pointer> freePinned = new Pool<>(size -> {
    Pointer p = new Pointer();
    JCudaDriver.cuMemHostAlloc(p, size, 0);
    return p;
  }, JCudaDriver::cuMemFreeHost);

  /** Freed allocations by size class, for reuse: cuMemAlloc and cuMemHostAlloc synchronize the device. */
  private static final class Pool<T> {
    private final Map<Long, ArrayDeque<T>> free = new HashMap<>();
    private final LongFunction<T> allocate;
    private final Consumer<T> release;

    Pool(LongFunction<T> allocate, Consumer<T> release) {
      this.allocate = allocate;
      this.release = release;
    }

    /** A cached block of {@code sizeClass} bytes, or a new one. */
    T get(long sizeClass) {
      T t = take(sizeClass);
      if (t != null) {
        return t;
      }
      try {
        return allocate.apply(sizeClass);
      } catch (jcuda.CudaException e) {
        // Out of memory with blocks of other sizes cached: give them back and try once more.
        drain().forEach(release);
        return allocate.apply(sizeClass);
      }
    }

    private synchronized T take(long sizeClass) {
      ArrayDeque<T> q = free.get(sizeClass);
      return q == null ? null : q.poll();
    }

    synchronized void give(long sizeClass, T t) {
      free.computeIfAbsent(sizeClass, k -> new ArrayDeque<>()).push(t);
    }

    /** Every cached allocation, removed from the pool (to free them). */
    private synchronized java.util.List<T> drain() {
      java.util.List<T> all = new java.util.ArrayList<>();
      free.values().forEach(all::addAll);
      free.clear();
      return all;
    }
  }

  /** A block from a {@link Pool}, given back to it on the first close. */
  private abstract static class Pooled<T> implements AutoCloseable {
    final T ptr;
    private final long sizeClass;
    private final Pool<T> pool;
    private final java.util.concurrent.atomic.AtomicBoolean given = new java.util.concurrent.atomic.AtomicBoolean();

    Pooled(Pool<T> pool, T ptr, long sizeClass) {
      this.pool = pool;
      this.ptr = ptr;
      this.sizeClass = sizeClass;
    }

    /** What gives the block back, referring to none of its Java views (a {@link java.lang.ref.Cleaner} action). */
    final Runnable giveBack() {
      Pool<T> p = pool;
      T t = ptr;
      long c = sizeClass;
      java.util.concurrent.atomic.AtomicBoolean g = given;
      return () -> {
        if (g.compareAndSet(false, true)) {
          p.give(c, t);
        }
      };
    }

    /** From now on {@link #close} does nothing: whoever took the block over gives it back. */
    final void handOver() {
      given.set(true);
    }

    @Override
    public void close() {
      giveBack().run();
    }
  }

  /** Gives detached pinned buffers back to the pool once unreachable. */
  private static final java.lang.ref.Cleaner CLEANER = java.lang.ref.Cleaner.create();
  /** Bytes of detached pinned buffers (result parts) not yet given back, and the most before a GC is asked for. */
  private static final java.util.concurrent.atomic.AtomicLong DETACHED = new java.util.concurrent.atomic.AtomicLong();
  private static final long DETACHED_LIMIT = 4L << 30;

  /** Start and end events around each launch while {@link #timeKernels} is on (for bench). */
  private final java.util.List<CUevent[]> timed = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
  private volatile boolean timing;

  private JCudaDevice(int ordinal) {
    this.ordinal = ordinal;
    JCudaDriver.setExceptionsEnabled(true);
    JCudaDriver.cuInit(0);
    CUdevice dev = new CUdevice();
    JCudaDriver.cuDeviceGet(dev, ordinal);
    // This device's own architecture: a node may mix GPU generations, and the probe looked at device 0.
    int[] major = {0};
    int[] minor = {0};
    JCudaDriver.cuDeviceGetAttribute(major, jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    JCudaDriver.cuDeviceGetAttribute(minor, jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    int arch = CudaModules.archFor(major[0], minor[0]);
    if (arch < 0) {
      throw new IllegalStateException("CUDA device " + ordinal + " has compute capability " + major[0] + "." + minor[0]
          + "; the kernels need 8.0 or newer");
    }
    byte[] name = new byte[256];
    JCudaDriver.cuDeviceGetName(name, name.length, dev);
    int len = 0;
    while (len < name.length && name[len] != 0) {
      len++;
    }
    this.description = new String(name, 0, len, StandardCharsets.US_ASCII) + ", device " + ordinal;
    long[] total = {0};
    JCudaDriver.cuDeviceTotalMem(total, dev);
    this.totalMemory = total[0];
    JCudaDriver.cuDevicePrimaryCtxRetain(context, dev);
    JCudaDriver.cuCtxSetCurrent(context);
    for (String module : CudaModules.MODULES) {
      byte[] ptx = CudaModules.ptx(module, arch);
      if (ptx == null) {
        throw new IllegalStateException("this build has no PTX for " + CudaModules.resource(module, "compute_" + arch));
      }
      CUmodule m = new CUmodule();
      JCudaDriver.cuModuleLoadData(m, ptx);
      for (String kernel : CudaModules.kernels(module)) {
        CUfunction f = new CUfunction();
        JCudaDriver.cuModuleGetFunction(f, m, kernel);
        functions.put(kernel, f);
      }
    }
  }

  /** Device {@code ordinal} (as CUDA numbers the visible devices), opened once per JVM. */
  public static JCudaDevice open(int ordinal) {
    CudaProbe.Answer probe = CudaProbe.answer();
    if (!probe.available()) {
      throw new IllegalStateException("CUDA is unavailable: " + probe.problem());
    }
    return OPEN.computeIfAbsent(ordinal, JCudaDevice::new);
  }

  @Override
  public String description() {
    return description;
  }

  @Override
  public long totalMemory() {
    return totalMemory;
  }

  private void current() {
    JCudaDriver.cuCtxSetCurrent(context);
  }

  /** Size classes: powers of two from 1 MiB, so a cached block fits any later request of its class. */
  private static long sizeClass(long bytes) {
    long c = 1 << 20;
    while (c < bytes) {
      c <<= 1;
    }
    return c;
  }

  @Override
  public Memory alloc(long bytes) {
    current();
    long size = sizeClass(bytes);
    return new DeviceMemory(freeDevice, freeDevice.get(size), bytes, size);
  }

  @Override
  public Pinned allocPinned(long bytes) {
    if (DETACHED.get() > DETACHED_LIMIT) {
      // Results hold pinned memory until the GC finds them unreachable; as the JDK does for direct
      // buffers past -XX:MaxDirectMemorySize, ask for a collection rather than pin ever more memory.
      System.gc();
    }
    current();
    long size = sizeClass(bytes);
    Pointer p = freePinned.get(size);
    return new JPinned(freePinned, p, size, p.getByteBuffer(0, bytes).order(ByteOrder.LITTLE_ENDIAN));
  }

  /** Pinned memory: the driver's pointer (what async copies take) and a buffer view of it. */
  private static final class JPinned extends Pooled<Pointer> implements Pinned {
    final ByteBuffer view;

    JPinned(Pool<Pointer> pool, Pointer ptr, long sizeClass, ByteBuffer view) {
      super(pool, ptr, sizeClass);
      this.view = view;
    }

    @Override
    public ByteBuffer buffer() {
      return view;
    }

    @Override
    public ByteBuffer detach() {
      // view is the root buffer (made by JNI): every duplicate or slice of it refers to it, so it stays
      // reachable while any view of the memory is; the action refers to the pointer only.
      long bytes = view.capacity();
      Runnable giveBack = giveBack();
      DETACHED.addAndGet(bytes);
      CLEANER.register(view, () -> {
        DETACHED.addAndGet(-bytes);
        giveBack.run();
      });
      handOver();
      return view;
    }
  }

  @Override
  public Stream stream() {
    current();
    CUstream s = new CUstream();
    JCudaDriver.cuStreamCreate(s, CUstream_flags.CU_STREAM_NON_BLOCKING);
    return new JStream(s);
  }

  @Override
  public void copyToDevice(Pinned src, long srcOffset, Ptr dst, long bytes, Stream s) {
    current();
    Pointer from = ((JPinned) src).ptr.withByteOffset(srcOffset);
    JCudaDriver.cuMemcpyHtoDAsync(device(dst), from, bytes, ((JStream) s).stream);
  }

  @Override
  public void copyToHost(Ptr src, Pinned dst, long dstOffset, long bytes, Stream s) {
    current();
    Pointer to = ((JPinned) dst).ptr.withByteOffset(dstOffset);
    JCudaDriver.cuMemcpyDtoHAsync(to, device(src), bytes, ((JStream) s).stream);
  }

  @Override
  public void launch(Stream s, String kernel, int gridX, int blockX, int dynamicSharedBytes, Object... args) {
    current();
    CUfunction f = functions.get(kernel);
    if (f == null) {
      throw new IllegalArgumentException("no CUDA kernel named " + kernel + " (CudaModules.MODULES lists the modules loaded)");
    }
    Pointer[] params = new Pointer[args.length];
    for (int i = 0; i < args.length; i++) {
      Object a = args[i];
      if (a instanceof Memory m) {
        a = m.at(0);
      }
      if (a instanceof Ptr p) {
        params[i] = Pointer.to(device(p));
      } else if (a instanceof Integer v) {
        params[i] = Pointer.to(new int[] {v});
      } else if (a instanceof Long v) {
        params[i] = Pointer.to(new long[] {v});
      } else if (a instanceof Float v) {
        params[i] = Pointer.to(new float[] {v});
      } else {
        throw new IllegalArgumentException("kernel argument " + i + " of " + kernel + " is a " + a.getClass().getName());
      }
    }
    CUstream stream = ((JStream) s).stream;
    CUevent[] events = timing ? new CUevent[] {new CUevent(), new CUevent()} : null;
    if (events != null) {
      JCudaDriver.cuEventCreate(events[0], CUevent_flags.CU_EVENT_DEFAULT);
      JCudaDriver.cuEventCreate(events[1], CUevent_flags.CU_EVENT_DEFAULT);
      JCudaDriver.cuEventRecord(events[0], stream);
    }
    JCudaDriver.cuLaunchKernel(f, gridX, 1, 1, blockX, 1, 1, dynamicSharedBytes, stream, Pointer.to(params), null);
    if (events != null) {
      JCudaDriver.cuEventRecord(events[1], stream);
      timed.add(events);
    }
  }

  /** Starts or stops timing every kernel launch with CUDA events (bench's kernel-only figure). */
  public void timeKernels(boolean on) {
    timing = on;
  }

  /** The GPU time of the kernels launched while timing was on, in seconds, summed; resets the sum. */
  public double takeKernelSeconds() {
    current();
    double ms = 0;
    synchronized (timed) {
      for (CUevent[] e : timed) {
        JCudaDriver.cuEventSynchronize(e[1]);
        float[] elapsed = {0};
        JCudaDriver.cuEventElapsedTime(elapsed, e[0], e[1]);
        ms += elapsed[0];
        JCudaDriver.cuEventDestroy(e[0]);
        JCudaDriver.cuEventDestroy(e[1]);
      }
      timed.clear();
    }
    return ms / 1e3;
  }

  @Override
  public void synchronize(Stream s) {
    current();
    JCudaDriver.cuStreamSynchronize(((JStream) s).stream);
  }

  @Override
  public Event event() {
    current();
    CUevent e = new CUevent();
    JCudaDriver.cuEventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING);
    return new JEvent(e);
  }

  @Override
  public void record(Event e, Stream s) {
    current();
    JCudaDriver.cuEventRecord(((JEvent) e).event, ((JStream) s).stream);
  }

  @Override
  public void waitEvent(Stream s, Event e) {
    current();
    JCudaDriver.cuStreamWaitEvent(((JStream) s).stream, ((JEvent) e).event, 0);
  }

  @Override
  public void synchronize(Event e) {
    current();
    JCudaDriver.cuEventSynchronize(((JEvent) e).event);
  }

  private final class JEvent implements Event {
    final CUevent event;
    private boolean closed;

    JEvent(CUevent event) {
      this.event = event;
    }

    @Override
    public void close() {
      if (!closed) {
        closed = true;
        current();
        JCudaDriver.cuEventDestroy(event); // resources go once queued work that records it has run
      }
    }
  }

  @Override
  public FunctionAttributes attributes(String kernel) {
    current();
    CUfunction f = functions.get(kernel);
    if (f == null) {
      return null;
    }
    return new FunctionAttributes(attribute(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_NUM_REGS),
        attribute(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES),
        attribute(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES),
        attribute(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK));
  }

  private static int attribute(CUfunction f, int attribute) {
    int[] v = {0};
    JCudaDriver.cuFuncGetAttribute(v, attribute, f);
    return v[0];
  }

  private static CUdeviceptr device(Ptr p) {
    return ((DeviceMemory) p.memory()).ptr.withByteOffset(p.offset());
  }

  private static final class DeviceMemory extends Pooled<CUdeviceptr> implements Memory {
    final long bytes;

    DeviceMemory(Pool<CUdeviceptr> pool, CUdeviceptr ptr, long bytes, long sizeClass) {
      super(pool, ptr, sizeClass);
      this.bytes = bytes;
    }

    @Override
    public long size() {
      return bytes;
    }
  }

  private final class JStream implements Stream {
    final CUstream stream;

    JStream(CUstream stream) {
      this.stream = stream;
    }

    @Override
    public void close() {
      current();
      try {
        JCudaDriver.cuStreamSynchronize(stream);
      } finally {
        JCudaDriver.cuStreamDestroy(stream);
      }
    }
  }

  @Override
  public String toString() {
    return "cuda:" + ordinal + " (" + description + ")";
  }
}
