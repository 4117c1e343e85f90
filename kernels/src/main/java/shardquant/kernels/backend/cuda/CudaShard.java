package shardquant.kernels.backend.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * One row shard on the device: its rows uploaded in chunks, its outputs downloaded, all of it queued
 * without waiting for a kernel. Everything allocated here is freed by {@link #close}, also when a kernel
 * fails.
 *
 * <p>Two streams: uploads on one, kernels and downloads on the other. Chunk i goes through pinned
 * staging buffer i % {@value #STAGING}; an event recorded after its upload lets the kernel stream wait
 * for it, and lets the host reuse the buffer {@value #STAGING} chunks later without waiting for any
 * kernel. So the host copy into one buffer, the upload from another and the kernels and downloads of
 * earlier chunks overlap; the upload of chunk i+1 never waits for the kernel of chunk i. The host copy
 * into pinned memory runs on several threads for large chunks (one thread's copy would cap the upload).
 *
 * <p>Outputs ({@link #rowOutput}, {@link #output}) are downloaded into pinned buffers that become the
 * results ({@link Output#tensor}): no copy to the heap. A row output's bytes for a chunk's rows are
 * queued for download right after that chunk's kernels; the rest (int4 tile-packed's tiles, int4's
 * scale_and_zero, which is per column) after the last chunk. The host waits once, when every download
 * is queued.
 *
 * <p>Kernels see the whole shard: the input buffer holds all rows at their offsets, and a chunk's
 * kernels get the chunk's row range and write the shard's outputs in place, so the layout a kernel
 * writes never depends on how the shard was chunked.
 *
 * <p>A shard made with its input already on the device ({@link ResidentInputs}: NF4's first pass kept it)
 * uploads nothing: {@link #uploadAndRun} launches each chunk's kernels and queues its downloads at once.
 */
final class CudaShard extends DeviceScope {
  /** Host-to-device chunk size by default; a chunk is rounded to whole row units. */
  static final long CHUNK_BYTES = 8L << 20;
  /** Pinned staging buffers per shard: one being filled, one uploading, one spare against jitter. */
  static final int STAGING = 3;
  /** The host copy into pinned memory splits a chunk into pieces of at least this many bytes. */
  static final int COPY_PIECE_BYTES = 1 << 20;
  private static final int COPY_THREADS = Math.max(1, Math.min(8, Runtime.getRuntime().availableProcessors()));
  private static final ExecutorService COPIERS = Executors.newFixedThreadPool(COPY_THREADS, r -> {
    Thread t = new Thread(r, "sq-pinned-copy");
    t.setDaemon(true);
    return t;
  });

  /** Launches a chunk's kernels on stream {@code s} for rows [rowBegin, rowEnd) of the shard. */
  @FunctionalInterface
  interface ChunkKernels {
    void launch(CudaDevice.Stream s, int rowBegin, int rowEnd);
  }

  private final Tensor rows;
  private final CudaDevice.Stream upload;
  private final CudaDevice.Stream compute;
  private final CudaDevice.Memory input;
  private final long chunkBytes;
  private final List<Output> outputs = new ArrayList<>();
  /** The input holds the rows already (uploaded and synchronized by an earlier shard). */
  private final boolean resident;
  private boolean ran;
  private boolean kept;

  CudaShard(CudaDevice dev, Tensor rows, long chunkBytes) {
    this(dev, rows, chunkBytes, null);
  }

  /**
   * With {@code residentInput} non-null, the shard's rows already on the device (everything that wrote
   * them has run), taken over: freed with the shard; nothing is uploaded.
   */
  CudaShard(CudaDevice dev, Tensor rows, long chunkBytes, CudaDevice.Memory residentInput) {
    super(dev);
    this.rows = rows;
    this.chunkBytes = chunkBytes;
    this.resident = residentInput != null;
    boolean done = false;
    try {
      if (residentInput != null) {
        own(residentInput);
        if (residentInput.size() != Math.max(1, rows.byteSize())) {
          throw new IllegalArgumentException("a resident input of " + residentInput.size() + " bytes for " + rows
              + " of " + rows.byteSize());
        }
      }
      upload = newStream();
      compute = newStream();
      input = resident ? residentInput : own(dev.alloc(Math.max(1, rows.byteSize())));
      done = true;
    } finally {
      if (!done) {
        close();
      }
    }
  }

  int rowCount() {
    return Math.toIntExact(rows.rows());
  }

  CudaDevice.Memory input() {
    return input;
  }

  /** Whether the rows were on the device already: nothing was uploaded for them. */
  boolean resident() {
    return resident;
  }

  /**
   * The input, with the rows on it, handed over to the caller (who closes it): after {@link #uploadAndRun},
   * once. The shard no longer frees it.
   */
  CudaDevice.Memory keepInput() {
    if (!ran || kept) {
      throw new IllegalStateException(kept ? "the input was kept already" : "keepInput before uploadAndRun");
    }
    synchronizeAll(); // the rows are uploaded (uploadAndRun waited for the kernel stream; the upload stream too, now)
    kept = true;
    return disown(input);
  }

  /**
   * Device memory of {@code bytes} bytes the kernels write and the host reads back, row by row: rows
   * [r0, r1) of the shard own its bytes [bytes * r0 / rows, bytes * r1 / rows), exactly at every chunk
   * boundary. Queued for download after each chunk's kernels.
   */
  Output rowOutput(long bytes) {
    return add(new Output(bytes, true));
  }

  /** Device memory of {@code bytes} bytes the kernels write and the host reads back after the last chunk. */
  Output output(long bytes) {
    return add(new Output(bytes, false));
  }

  private Output add(Output o) {
    if (ran) {
      throw new IllegalStateException("outputs are declared before uploadAndRun");
    }
    outputs.add(o);
    return o;
  }

  /** Queues a copy of {@code bytes} (from its position) into {@code dst} on the upload stream, before any chunk's. */
  void upload(ByteBuffer bytes, CudaDevice.Memory dst) {
    int n = bytes.remaining();
    CudaDevice.Pinned pinned = own(dev.allocPinned(Math.max(1, n)));
    pinned.buffer().duplicate().clear().put(bytes.duplicate());
    dev.copyToDevice(pinned, 0, dst.at(0), n, upload);
  }

  /**
   * Uploads the rows, chunk by chunk (each a multiple of {@code rowUnit} rows but the last), launches
   * {@code kernels} for each chunk once its upload has run, queues the outputs' downloads; returns when
   * they have run.
   */
  void uploadAndRun(int rowUnit, ChunkKernels kernels) {
    int n = rowCount();
    long rowBytes = Math.max(1, rows.byteSize() / Math.max(1, n));
    int unitsPerChunk = (int) Math.max(1, chunkBytes / (rowBytes * rowUnit));
    int chunkRows = Math.toIntExact(Math.min((long) unitsPerChunk * rowUnit, Math.max(n, 1)));
    int chunks = (n + chunkRows - 1) / chunkRows;
    if (resident) {
      CudaDevice.Event queued = own(dev.event()); // what was queued on the upload stream (#upload's parameters)
      dev.record(queued, upload);
      dev.waitEvent(compute, queued);
      for (int r0 = 0; r0 < n; r0 += chunkRows) {
        int r1 = Math.min(n, r0 + chunkRows);
        kernels.launch(compute, r0, r1);
        downloadRows(r0, r1, n);
      }
      finish();
      return;
    }
    int buffers = Math.max(1, Math.min(STAGING, chunks));
    CudaDevice.Pinned[] staging = new CudaDevice.Pinned[buffers];
    CudaDevice.Event[] uploaded = new CudaDevice.Event[buffers];
    for (int i = 0; i < buffers; i++) {
      staging[i] = own(dev.allocPinned(Math.max(1, (long) chunkRows * rowBytes)));
      uploaded[i] = own(dev.event());
    }
    ByteBuffer src = rows.bytes();
    int chunk = 0;
    for (int r0 = 0; r0 < n; r0 += chunkRows, chunk++) {
      int r1 = Math.min(n, r0 + chunkRows);
      int k = chunk % buffers;
      if (chunk >= buffers) {
        dev.synchronize(uploaded[k]); // the upload from this buffer has run; the kernel after it need not have
      }
      long from = r0 * rowBytes;
      int bytes = Math.toIntExact((r1 - r0) * rowBytes);
      copy(src.slice(Math.toIntExact(from), bytes), staging[k].buffer());
      dev.copyToDevice(staging[k], 0, input.at(from), bytes, upload);
      dev.record(uploaded[k], upload);
      dev.waitEvent(compute, uploaded[k]);
      kernels.launch(compute, r0, r1);
      downloadRows(r0, r1, n);
    }
    finish();
  }

  /** Queues the row outputs' downloads of rows [r0, r1) of {@code n}. */
  private void downloadRows(int r0, int r1, int n) {
    for (Output o : outputs) {
      if (o.byRow) {
        o.download(r0, r1, n);
      }
    }
  }

  /** Queues the other outputs' downloads and waits for every download. */
  private void finish() {
    for (Output o : outputs) {
      if (!o.byRow) {
        o.download(0, 1, 1);
      }
    }
    dev.synchronize(compute); // uploads are before it: every kernel waited for its chunk's
    ran = true;
  }

  /**
   * Copies {@code src} (position to limit) to the start of {@code dst}: on up to {@value #COPY_THREADS}
   * threads, this one included, in pieces of at least {@value #COPY_PIECE_BYTES} bytes.
   */
  static void copy(ByteBuffer src, ByteBuffer dst) {
    int n = src.remaining();
    int pieces = Math.max(1, Math.min(COPY_THREADS, n / COPY_PIECE_BYTES));
    int piece = (n + pieces - 1) / pieces;
    List<Future<?>> others = new ArrayList<>();
    for (int p = 1; p < pieces; p++) {
      int at = p * piece;
      int len = Math.min(piece, n - at);
      others.add(COPIERS.submit(() -> copyPiece(src, dst, at, len)));
    }
    copyPiece(src, dst, 0, Math.min(piece, n));
    for (Future<?> f : others) {
      try {
        f.get();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted copying into pinned memory", e);
      } catch (ExecutionException e) {
        throw new IllegalStateException("copying into pinned memory", e.getCause());
      }
    }
  }

  private static void copyPiece(ByteBuffer src, ByteBuffer dst, int at, int len) {
    dst.duplicate().position(at).put(src.slice(src.position() + at, len));
  }

  /**
   * Device memory the kernels write ({@link CudaDevice.Memory}, so it goes into a launch's arguments as
   * is) with the pinned buffer it is downloaded into. The shard owns both.
   */
  final class Output implements CudaDevice.Memory {
    private final CudaDevice.Memory device;
    private final CudaDevice.Pinned host;
    private final long bytes;
    private final boolean byRow;

    private Output(long bytes, boolean byRow) {
      this.bytes = bytes;
      this.byRow = byRow;
      this.device = own(dev.alloc(Math.max(1, bytes)));
      this.host = own(dev.allocPinned(Math.max(1, bytes)));
    }

    /** Queues the download of rows [r0, r1) of {@code n} on the kernel stream. */
    private void download(int r0, int r1, int n) {
      long from = at(r0, n);
      long to = at(r1, n);
      if (to > from) {
        dev.copyToHost(device.at(from), host, from, to - from, compute);
      }
    }

    private long at(int r, int n) {
      if (bytes * r % n != 0) {
        throw new IllegalStateException("a chunk boundary at row " + r + " of " + n + " splits a row of a "
            + bytes + "-byte output");
      }
      return bytes * r / n;
    }

    /** The downloaded bytes, little-endian; valid until the shard is closed. */
    ByteBuffer bytes() {
      if (!ran) {
        throw new IllegalStateException("read before uploadAndRun");
      }
      return host.buffer().slice(0, Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The downloaded bytes as a host tensor, which keeps the pinned buffer (freed once unreachable). */
    Tensor tensor(DType dtype, long... shape) {
      ByteBuffer view = bytes();
      host.detach();
      return Tensor.of(dtype, shape, view);
    }

    @Override
    public long size() {
      return device.size();
    }

    @Override
    public CudaDevice.Ptr at(long offset) {
      return device.at(offset);
    }

    @Override
    public void close() {
      // the shard closes its device memory and pinned buffer
    }
  }

  /** The per-row stats the kernels wrote into {@code stats} ({@link CudaRowStats#BYTES} per row). */
  CudaRowStats stats(Output stats) {
    return new CudaRowStats(stats.bytes(), rowCount());
  }
}
