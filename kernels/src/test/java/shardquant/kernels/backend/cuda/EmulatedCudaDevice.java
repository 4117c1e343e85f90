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
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

/**
 * A {@link CudaDevice} whose kernels run in the host emulator ({@link CudaEmulator}, one child process):
 * device memory is Java heap, "pinned" memory is a direct buffer (poisoned when closed), and each stream
 * is a queue that runs only when the host waits for it (the stream, or an event recorded on it) or
 * another stream waits for an event recorded on it, so host code that reads a result or reuses a
 * staging buffer before waiting gets wrong bytes here, as it could on a GPU. A launch ships the buffers
 * its pointers name to the emulator and takes them back.
 *
 * <p>{@link #startTimeline} records every copy and kernel from then on with what it is ordered after
 * ({@link Op}): the previous operation of its stream, the points of the events its stream waited for,
 * and what the host had waited for when it queued the operation. The emulator runs one operation at a
 * time, but two operations neither of which is a transitive predecessor of the other may run at once
 * on a GPU ({@link #ordered}).
 */
public final class EmulatedCudaDevice implements CudaDevice, AutoCloseable {
  private static final int MAGIC = 0x4B4C5153;
  private static final long LAUNCH_TIMEOUT_S = 300;

  private Process process;
  private Path stderr;
  private long launches;
  private long liveAllocations;
  private long uploadedBytes;
  /** The memory this emulated GPU claims to have ({@link #totalMemory}); its allocations live on the heap. */
  public static final long MEMORY = 1L << 30;

  @Override
  public String description() {
    return "CUDA emulator on the host (" + CudaEmulator.BINARY + ")";
  }

  /** Kernel launches so far (tests check their host code really used the device). */
  public synchronized long launches() {
    return launches;
  }

  @Override
  public long totalMemory() {
    return MEMORY;
  }

  /** Bytes queued for copying to the device so far (tests count uploads). */
  public synchronized long uploadedBytes() {
    return uploadedBytes;
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
      private boolean handedOver;

      @Override
      public ByteBuffer buffer() {
        return b;
      }

      @Override
      public ByteBuffer detach() {
        handedOver = true;
        return b;
      }

      @Override
      public void close() {
        if (!handedOver) { // a GPU's cache hands the memory to the next user: reading it after close is a bug
          for (int i = 0; i < b.capacity(); i++) {
            b.put(i, (byte) 0xA5);
          }
        }
      }
    };
  }

  @Override
  public synchronized Stream stream() {
    return new Queue(streams++);
  }

  private int streams;

  @Override
  public void copyToDevice(Pinned src, long srcOffset, Ptr dst, long bytes, Stream s) {
    HeapMemory m = (HeapMemory) dst.memory();
    check(dst.offset(), bytes, m.data.length, "copy to device");
    check(srcOffset, bytes, src.buffer().capacity(), "copy from pinned memory");
    synchronized (this) {
      uploadedBytes += bytes;
    }
    enqueue((Queue) s, Op.Kind.UPLOAD, bytes + " bytes", () -> src.buffer().duplicate().position(Math.toIntExact(srcOffset))
        .get(m.data, Math.toIntExact(dst.offset()), Math.toIntExact(bytes)));
  }

  @Override
  public void copyToHost(Ptr src, Pinned dst, long dstOffset, long bytes, Stream s) {
    HeapMemory m = (HeapMemory) src.memory();
    check(src.offset(), bytes, m.data.length, "copy from device");
    check(dstOffset, bytes, dst.buffer().capacity(), "copy to pinned memory");
    enqueue((Queue) s, Op.Kind.DOWNLOAD, bytes + " bytes", () -> dst.buffer().duplicate().position(Math.toIntExact(dstOffset))
        .put(m.data, Math.toIntExact(src.offset()), Math.toIntExact(bytes)));
  }

  /**
   * A copy or kernel of the timeline: {@code after} holds the ids of the operations it directly follows
   * (some may precede the timeline's start).
   */
  public record Op(int id, Kind kind, String label, int stream, Set<Integer> after) {
    public enum Kind { UPLOAD, KERNEL, DOWNLOAD }
  }

  private List<Op> timeline;
  /** Op ids are never reused, so what a thread or stream waited for before a restart is no later op. */
  private int nextOp;
  /** Per host thread: the operations it has waited for (their predecessors are implied). */
  private final ThreadLocal<Set<Integer>> hostWaited = ThreadLocal.withInitial(HashSet::new);

  /** Records every copy and kernel queued from now on (forgetting earlier ones). */
  public synchronized void startTimeline() {
    timeline = new ArrayList<>();
  }

  /** The operations recorded since {@link #startTimeline}, in the order the host queued them. */
  public synchronized List<Op> timeline() {
    return List.copyOf(timeline);
  }

  /** Whether {@code later} is a transitive successor of {@code earlier} in {@code ops} (else they may overlap). */
  public static boolean ordered(List<Op> ops, Op earlier, Op later) {
    Map<Integer, Op> byId = new HashMap<>();
    ops.forEach(o -> byId.put(o.id(), o));
    ArrayDeque<Integer> todo = new ArrayDeque<>(later.after());
    Set<Integer> seen = new HashSet<>();
    while (!todo.isEmpty()) {
      int id = todo.poll();
      if (id == earlier.id()) {
        return true;
      }
      if (seen.add(id) && byId.containsKey(id)) { // ops before the timeline started precede all of it
        todo.addAll(byId.get(id).after());
      }
    }
    return false;
  }

  private synchronized void enqueue(Queue q, Op.Kind kind, String label, Runnable run) {
    q.add(run);
    if (timeline != null) {
      Set<Integer> after = new TreeSet<>(q.frontier);
      after.addAll(hostWaited.get());
      Op op = new Op(nextOp++, kind, label, q.id, Set.copyOf(after));
      timeline.add(op);
      q.frontier.clear();
      q.frontier.add(op.id());
    }
  }

  @Override
  public Event event() {
    return new Mark();
  }

  @Override
  public synchronized void record(Event e, Stream s) {
    Mark m = (Mark) e;
    Queue q = (Queue) s;
    m.queue = q;
    m.seq = q.enqueued;
    m.point = new HashSet<>(q.frontier);
    m.point.addAll(hostWaited.get());
  }

  @Override
  public synchronized void waitEvent(Stream s, Event e) {
    Mark m = (Mark) e;
    Queue q = (Queue) s;
    if (m.queue == null) {
      return;
    }
    Queue on = m.queue;
    long seq = m.seq;
    q.add(() -> on.runUntil(seq));
    q.frontier.addAll(m.point);
  }

  @Override
  public void synchronize(Event e) {
    Mark m = (Mark) e;
    if (m.queue != null) {
      m.queue.runUntil(m.seq);
      synchronized (this) {
        hostWaited.get().addAll(m.point);
      }
    }
  }

  private static void check(long offset, long bytes, long size, String what) {
    if (offset < 0 || bytes < 0 || offset + bytes > size) {
      throw new IndexOutOfBoundsException(what + ": " + bytes + " bytes at " + offset + " of " + size);
    }
  }

  @Override
  public void launch(Stream s, String kernel, int gridX, int blockX, int dynamicSharedBytes, Object... args) {
    Object[] copy = args.clone();
    enqueue((Queue) s, Op.Kind.KERNEL, kernel, () -> run(kernel, gridX, blockX, dynamicSharedBytes, copy));
  }

  @Override
  public void synchronize(Stream s) {
    Queue q = (Queue) s;
    q.runUntil(Long.MAX_VALUE);
    synchronized (this) {
      hostWaited.get().addAll(q.frontier);
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

  /** A stream: its operations run, in order, only when something waits for them. */
  private static final class Queue implements Stream {
    final int id;
    private final ArrayDeque<Runnable> ops = new ArrayDeque<>();
    long enqueued;
    private long executed;
    /** The timeline's operations the next one on this stream follows. */
    final Set<Integer> frontier = new HashSet<>();

    Queue(int id) {
      this.id = id;
    }

    void add(Runnable op) {
      ops.add(op);
      enqueued++;
    }

    /** Runs this stream's operations up to the {@code seq}-th queued (all, when fewer). */
    void runUntil(long seq) {
      while (executed < seq && !ops.isEmpty()) {
        Runnable op = ops.poll();
        executed++;
        op.run();
      }
    }

    @Override
    public void close() {}
  }

  /** An event: the stream and the count of its operations queued when it was last recorded. */
  private static final class Mark implements Event {
    Queue queue;
    long seq;
    Set<Integer> point = Set.of();

    @Override
    public void close() {}
  }
}
