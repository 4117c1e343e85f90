package shardquant.kernels.backend.cuda;

import java.nio.ByteBuffer;

/**
 * The few driver operations the CUDA kernels' host code needs: device and pinned host memory, streams,
 * asynchronous copies and kernel launches by name. {@link JCudaDevice} is the GPU (JCuda's driver API);
 * the tests' {@code EmulatedCudaDevice} runs the same kernels compiled for the host (src/test/cuda-emu),
 * so the host code (chunking, offsets, argument lists, stream order) and the kernels are tested in CI
 * without a GPU. Every operation on a stream runs in stream order; {@link #synchronize} waits for it.
 */
public interface CudaDevice {
  /** The GPU in words ({@code NVIDIA H100 80GB HBM3, compute 9.0, device 0}). */
  String description();

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

    @Override
    void close();
  }

  /** A stream; {@link #close} synchronizes it first. */
  interface Stream extends AutoCloseable {
    @Override
    void close();
  }
}
