package shardquant.kernels.backend.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * The device resources of one piece of work (a shard, a transfer), freed together by {@link #close}:
 * its streams are synchronized first, so nothing in flight still uses what is freed, then everything
 * it owns is closed in reverse order, also when a kernel failed; the first failure is rethrown.
 */
class DeviceScope implements AutoCloseable {
  final CudaDevice dev;
  private final List<AutoCloseable> owned = new ArrayList<>();
  private final List<CudaDevice.Stream> streams = new ArrayList<>();

  DeviceScope(CudaDevice dev) {
    this.dev = dev;
  }

  /** {@code t}, closed with this scope. */
  final <T extends AutoCloseable> T own(T t) {
    owned.add(t);
    return t;
  }

  /** {@code t}, no longer closed with this scope: its new holder closes it. */
  final <T extends AutoCloseable> T disown(T t) {
    if (!owned.remove(t)) {
      throw new IllegalStateException("not owned here: " + t);
    }
    return t;
  }

  /** A new stream of this scope. */
  final CudaDevice.Stream newStream() {
    CudaDevice.Stream s = own(dev.stream());
    streams.add(s);
    return s;
  }

  /** Device memory freed with the scope. */
  final CudaDevice.Memory alloc(long bytes) {
    return own(dev.alloc(Math.max(1, bytes)));
  }

  final void synchronizeAll() {
    for (CudaDevice.Stream s : streams) {
      dev.synchronize(s);
    }
  }

  /**
   * {@code bytes} bytes of {@code src} from {@code offset} in a new heap buffer, copied through
   * {@code pinned} (at most its size at a time) on stream {@code s}, after everything queued before.
   */
  final ByteBuffer download(CudaDevice.Memory src, long offset, long bytes, CudaDevice.Pinned pinned, CudaDevice.Stream s) {
    synchronizeAll();
    ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN);
    long step = Math.max(1, pinned.buffer().capacity());
    for (long done = 0; done < bytes; done += step) {
      long n = Math.min(step, bytes - done);
      dev.copyToHost(src.at(offset + done), pinned, 0, n, s);
      dev.synchronize(s);
      ByteBuffer view = pinned.buffer().duplicate();
      view.clear().limit(Math.toIntExact(n));
      out.put(view);
    }
    return out.flip();
  }

  @Override
  public void close() {
    RuntimeException first = null;
    try {
      synchronizeAll();
    } catch (RuntimeException e) {
      first = e;
    }
    for (int i = owned.size() - 1; i >= 0; i--) {
      try {
        owned.get(i).close();
      } catch (Exception e) {
        if (first == null) {
          first = e instanceof RuntimeException r ? r : new IllegalStateException(e);
        }
      }
    }
    owned.clear();
    streams.clear();
    if (first != null) {
      throw first;
    }
  }
}
