package shardquant.kernels.backend.cuda;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A {@link CudaDevice} whose kernels run in the host emulator ({@link CudaEmulator}, one child process):
 * device memory is Java heap, "pinned" memory is a direct buffer, and each stream is a queue that runs
 * only when synchronized, so host code that reads a result or reuses a staging buffer before
 * synchronizing gets wrong bytes here, as it could on a GPU. A launch ships the buffers its pointers
 * name to the emulator and takes them back.
 */
public final class EmulatedCudaDevice implements CudaDevice, AutoCloseable {
  private static final int MAGIC = 0x4B4C5153;
  private static final long LAUNCH_TIMEOUT_S = 300;

  private Process process;
  private Path stderr;
  private long launches;
  private long liveAllocations;

  @Override
  public String description() {
    return "CUDA emulator on the host (" + CudaEmulator.BINARY + ")";
  }

  /** Kernel launches so far (tests check their host code really used the device). */
  public synchronized long launches() {
    return launches;
  }

  /** Device allocations not yet closed (tests check nothing leaks, also on failure paths). */
  public synchronized long liveAllocations() {
    return liveAllocations;
  }

  @Override
  public synchronized Memory alloc(long bytes) {
    liveAllocations++;
    return new HeapMemory(new byte[Math.toIntExact(bytes)]);
  }

  @Override
  public Pinned allocPinned(long bytes) {
    ByteBuffer b = ByteBuffer.allocateDirect(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN);
    return new Pinned() {
      @Override
      public ByteBuffer buffer() {
        return b;
      }

      @Override
      public void close() {}
    };
  }

  @Override
  public Stream stream() {
    return new Queue();
  }

  @Override
  public void copyToDevice(Pinned src, long srcOffset, Ptr dst, long bytes, Stream s) {
    HeapMemory m = (HeapMemory) dst.memory();
    check(dst.offset(), bytes, m.data.length, "copy to device");
    check(srcOffset, bytes, src.buffer().capacity(), "copy from pinned memory");
    ((Queue) s).ops.add(() -> src.buffer().duplicate().position(Math.toIntExact(srcOffset))
        .get(m.data, Math.toIntExact(dst.offset()), Math.toIntExact(bytes)));
  }

  @Override
  public void copyToHost(Ptr src, Pinned dst, long dstOffset, long bytes, Stream s) {
    HeapMemory m = (HeapMemory) src.memory();
    check(src.offset(), bytes, m.data.length, "copy from device");
    check(dstOffset, bytes, dst.buffer().capacity(), "copy to pinned memory");
    ((Queue) s).ops.add(() -> dst.buffer().duplicate().position(Math.toIntExact(dstOffset))
        .put(m.data, Math.toIntExact(src.offset()), Math.toIntExact(bytes)));
  }

  private static void check(long offset, long bytes, long size, String what) {
    if (offset < 0 || bytes < 0 || offset + bytes > size) {
      throw new IndexOutOfBoundsException(what + ": " + bytes + " bytes at " + offset + " of " + size);
    }
  }

  @Override
  public void launch(Stream s, String kernel, int gridX, int blockX, int dynamicSharedBytes, Object... args) {
    Object[] copy = args.clone();
    ((Queue) s).ops.add(() -> run(kernel, gridX, blockX, dynamicSharedBytes, copy));
  }

  @Override
  public void synchronize(Stream s) {
    ArrayDeque<Runnable> ops = ((Queue) s).ops;
    while (!ops.isEmpty()) {
      ops.poll().run();
    }
  }

  private synchronized void run(String kernel, int gridX, int blockX, int shared, Object[] args) {
    Map<HeapMemory, Integer> index = new IdentityHashMap<>();
    List<HeapMemory> buffers = new ArrayList<>();
    ByteBuffer params = ByteBuffer.allocate(9 * args.length).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < args.length; i++) {
      Object a = args[i];
      if (a instanceof Memory m) {
        a = m.at(0);
      }
      if (a instanceof Ptr p) {
        HeapMemory m = (HeapMemory) p.memory();
        Integer at = index.computeIfAbsent(m, k -> {
          buffers.add(k);
          return buffers.size() - 1;
        });
        params.put((byte) 'P').putLong(((long) at << 40) | p.offset());
      } else if (a instanceof Integer v) {
        params.put((byte) 'I').putLong(v & 0xFFFFFFFFL);
      } else if (a instanceof Long v) {
        params.put((byte) 'L').putLong(v);
      } else if (a instanceof Float v) {
        params.put((byte) 'F').putLong(Float.floatToRawIntBits(v) & 0xFFFFFFFFL);
      } else {
        throw new IllegalArgumentException("kernel argument " + i + " of " + kernel + " is a " + a.getClass().getName());
      }
    }
    byte[] name = kernel.getBytes(StandardCharsets.US_ASCII);
    ByteBuffer head = ByteBuffer.allocate(4 + 4 + name.length + 7 * 4 + 4).order(ByteOrder.LITTLE_ENDIAN);
    head.putInt(MAGIC).putInt(name.length).put(name).putInt(gridX).putInt(1).putInt(1).putInt(blockX).putInt(1).putInt(1)
        .putInt(shared).putInt(buffers.size());
    try {
      start();
      launchStarted = System.nanoTime();
      OutputStream out = process.getOutputStream();
      out.write(head.array());
      for (HeapMemory m : buffers) {
        out.write(le(8).putLong(m.data.length).array());
        out.write(m.data);
      }
      out.write(le(4).putInt(args.length).array());
      out.write(params.array(), 0, params.position());
      out.flush();
      DataInputStream in = new DataInputStream(process.getInputStream());
      int status = readInt(in);
      if (status != 0) {
        launchStarted = 0;
        byte[] message = new byte[readInt(in)];
        in.readFully(message);
        throw new IllegalStateException("emulated launch of " + kernel + ": " + new String(message, StandardCharsets.UTF_8));
      }
      for (HeapMemory m : buffers) {
        in.readFully(m.data);
      }
      launchStarted = 0;
      launches++;
    } catch (IOException e) {
      launchStarted = 0;
      String why = died();
      throw new IllegalStateException("the CUDA emulator failed running " + kernel + " (grid " + gridX + ", block " + blockX
          + "): " + (why.isEmpty() ? e.toString() : why), e);
    }
  }

  private static ByteBuffer le(int n) {
    return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
  }

  private static int readInt(DataInputStream in) throws IOException {
    return Integer.reverseBytes(in.readInt());
  }

  private void start() throws IOException {
    if (process != null && process.isAlive()) {
      return;
    }
    Path binary = CudaEmulator.binary();
    stderr = Files.createTempFile("sq-emu", ".stderr");
    ProcessBuilder pb = new ProcessBuilder(binary.toAbsolutePath().toString()).redirectError(stderr.toFile());
    pb.environment().put("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0:exitcode=3");
    process = pb.start();
    Process p = process;
    // A launch that never answers (a __syncthreads some threads skip) is killed, failing the test.
    Thread watchdog = new Thread(() -> {
      try {
        while (p.isAlive()) {
          long started = launchStarted;
          if (started != 0 && System.nanoTime() - started > TimeUnit.SECONDS.toNanos(LAUNCH_TIMEOUT_S)) {
            p.destroyForcibly();
            return;
          }
          p.waitFor(1, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }, "cuda-emu-watchdog");
    watchdog.setDaemon(true);
    watchdog.start();
  }

  private volatile long launchStarted;

  private String died() {
    try {
      if (process != null) {
        process.destroy();
        process.waitFor(10, TimeUnit.SECONDS);
      }
      return stderr == null ? "" : Files.readString(stderr).strip();
    } catch (IOException | InterruptedException e) {
      return "";
    } finally {
      process = null;
    }
  }

  @Override
  public synchronized void close() {
    if (process != null) {
      process.destroy();
      process = null;
    }
  }

  private final class HeapMemory implements Memory {
    final byte[] data;
    boolean closed;

    HeapMemory(byte[] data) {
      this.data = data;
    }

    @Override
    public long size() {
      return data.length;
    }

    @Override
    public void close() {
      synchronized (EmulatedCudaDevice.this) {
        if (!closed) {
          closed = true;
          liveAllocations--;
        }
      }
    }
  }

  private static final class Queue implements Stream {
    final ArrayDeque<Runnable> ops = new ArrayDeque<>();

    @Override
    public void close() {}
  }
}
