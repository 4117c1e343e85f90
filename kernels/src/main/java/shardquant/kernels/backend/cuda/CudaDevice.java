package shardquant.kernels.backend.cuda;

import java.nio.ByteBuffer;

/**
 * The few driver operations the CUDA kernels' host code needs: device and pinned host memory, streams,
 * asynchronous copies and kernel launches by name. {@link JCudaDevice} is the GPU (JCuda's driver API);
 * the tests' {@code EmulatedCudaDevice} runs the same kernels compiled for the host (src/test/cuda-emu),
 * so the host code (chunking, offsets, argument lists, stream order) and the kernels are tested in CI
 * without a GPU. Every operation on a stream runs in stream order; {@link #synchronize} waits for it.
 * Events order work across streams and let the host wait for part of a stream (an upload, not the
 * kernel queued after it).
 */
public interface CudaDevice {
  /** The GPU in words ({@code NVIDIA H100 80GB HBM3, compute 9.0, device 0}). */
  String description();

  /** Bytes of device memory the GPU has ({@code cuDeviceTotalMem}); 0 where unknown. */
  default long totalMemory() {
    return 0;
  }

  /** Device memory of at least {@code bytes} bytes (contents undefined). */
  Memory alloc(long bytes);

  /** Page-locked host memory of {@code bytes} bytes, for asynchronous copies. */
  Pinned allocPinned(long bytes);

  /** A new stream; streams of one device run concurrently. */
  Stream stream();

  /** Copies {@code bytes} from {@code src} at {@code srcOffset} to {@code dst}, in stream order. */
  void copyToDevice(Pinned src, long srcOffset, Ptr dst, long bytes, Stream s);

  /** Copies {@code bytes} from {@code src} to {@code dst} at {@code dstOffset}, in stream order. */
  void copyToHost(Ptr src, Pinned dst, long dstOffset, long bytes, Stream s);

  /**
   * Launches {@code kernel} (an {@code extern "C"} name in src/main/cuda) on a 1-D grid, in stream order.
   * Arguments: {@link Ptr} or {@link Memory} for pointers, {@link Integer} for int, {@link Long} for long
   * long, {@link Float} for float, in the kernel's parameter order.
   */
  void launch(Stream s, String kernel, int gridX, int blockX, int dynamicSharedBytes, Object... args);

  /** Waits until everything queued on {@code s} has run; a kernel fault surfaces here. */
  void synchronize(Stream s);

  /** A new event (no timing), not yet recorded. */
  Event event();

  /**
   * Records {@code e} on {@code s}: it completes once everything queued on {@code s} so far has run.
   * Recording again moves it; a wait already queued keeps the point recorded when it was queued.
   */
  void record(Event e, Stream s);

  /** Everything queued on {@code s} after this call runs after {@code e}'s last recorded point; the host does not wait. */
  void waitEvent(Stream s, Event e);

  /** Waits until {@code e}'s last recorded point has run (at once if never recorded). */
  void synchronize(Event e);

  /**
   * What the loaded module says of {@code kernel} ({@code cuFuncGetAttribute}): registers and local memory
   * per thread, static shared memory per block, the most threads a block may have; null where unknown
   * (the emulator).
   */
  default FunctionAttributes attributes(String kernel) {
    return null;
  }

  /** A kernel's resources as compiled for this GPU; see {@link #attributes}. */
  record FunctionAttributes(int registers, int localBytes, int staticSharedBytes, int maxThreadsPerBlock) {}

  /** A device allocation; {@link #close} returns it (to a cache, for the GPU). */
  interface Memory extends AutoCloseable {
    long size();

    default Ptr at(long offset) {
      if (offset < 0 || offset > size()) {
        throw new IndexOutOfBoundsException("offset " + offset + " of a " + size() + "-byte device buffer");
      }
      return new Ptr(this, offset);
    }

    @Override
    void close();
  }

  /** A device address: an allocation and a byte offset into it. */
  record Ptr(Memory memory, long offset) {}

  /** Page-locked host memory; {@link #buffer} is a little-endian view of all of it. */
  interface Pinned extends AutoCloseable {
    ByteBuffer buffer();

    /**
     * {@link #buffer}, handed over to its holder: the memory goes back (to the cache, for the GPU) once that
     * buffer and every view of it are unreachable, and {@link #close} does nothing from now on. For
     * results the host keeps (a downloaded part), so they need no copy out of pinned memory.
     */
    ByteBuffer detach();

    @Override
    void close();
  }

  /** An event; {@link #close} frees it (work it marks may still be queued). */
  interface Event extends AutoCloseable {
    @Override
    void close();
  }

  /** A stream; {@link #close} synchronizes it first. */
  interface Stream extends AutoCloseable {
    @Override
    void close();
  }
}
