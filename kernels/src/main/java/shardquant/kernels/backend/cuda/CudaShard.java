package shardquant.kernels.backend.cuda;

import java.nio.ByteBuffer;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * One row shard on the device: its rows uploaded in chunks through two pinned staging buffers on two
 * streams, so the host copy into one buffer, the upload of the other and the kernels of earlier chunks
 * overlap (double buffering); then outputs downloaded. Everything allocated here is freed by
 * {@link #close}, also when a kernel fails.
 *
 * <p>Kernels see the whole shard: the input buffer holds all rows at their offsets, and a chunk's
 * kernels get the chunk's row range and write the shard's outputs in place, so the layout a kernel
 * writes never depends on how the shard was chunked.
 */
final class CudaShard extends DeviceScope {
  /** Host-to-device chunk size by default; a chunk is rounded to whole row units. */
  static final long CHUNK_BYTES = 8L << 20;

  /** Launches a chunk's kernels on stream {@code s} for rows [rowBegin, rowEnd) of the shard. */
  @FunctionalInterface
  interface ChunkKernels {
    void launch(CudaDevice.Stream s, int rowBegin, int rowEnd);
  }

  private final Tensor rows;
  private final CudaDevice.Stream[] streams = new CudaDevice.Stream[2];
  private final CudaDevice.Memory input;
  private final long chunkBytes;

  CudaShard(CudaDevice dev, Tensor rows, long chunkBytes) {
    super(dev);
    this.rows = rows;
    this.chunkBytes = chunkBytes;
    boolean done = false;
    try {
      for (int i = 0; i < 2; i++) {
        streams[i] = newStream();
      }
      input = own(dev.alloc(Math.max(1, rows.byteSize())));
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

  /**
   * Uploads the rows, chunk by chunk (each a multiple of {@code rowUnit} rows but the last), and
   * launches {@code kernels} for each chunk on the stream that uploaded it; returns when all have run.
   */
  void uploadAndRun(int rowUnit, ChunkKernels kernels) {
    int n = rowCount();
    long rowBytes = Math.max(1, rows.byteSize() / Math.max(1, n));
    int unitsPerChunk = (int) Math.max(1, chunkBytes / (rowBytes * rowUnit));
    int chunkRows = Math.toIntExact(Math.min((long) unitsPerChunk * rowUnit, Math.max(n, 1)));
    CudaDevice.Pinned[] staging = new CudaDevice.Pinned[2];
    for (int i = 0; i < 2; i++) {
      staging[i] = own(dev.allocPinned(Math.max(1, (long) chunkRows * rowBytes)));
    }
    ByteBuffer src = rows.bytes();
    int chunk = 0;
    for (int r0 = 0; r0 < n; r0 += chunkRows, chunk++) {
      int r1 = Math.min(n, r0 + chunkRows);
      int k = chunk & 1;
      if (chunk >= 2) {
        dev.synchronize(streams[k]); // its staging buffer is free once the upload from it has run
      }
      long from = r0 * rowBytes;
      int bytes = Math.toIntExact((r1 - r0) * rowBytes);
      ByteBuffer pinned = staging[k].buffer().duplicate();
      pinned.clear();
      pinned.put(src.slice(Math.toIntExact(from), bytes));
      dev.copyToDevice(staging[k], 0, input.at(from), bytes, streams[k]);
      kernels.launch(streams[k], r0, r1);
    }
    synchronizeAll();
  }

  /** Downloads {@code bytes} bytes of {@code src} from {@code offset} into a new heap buffer. */
  ByteBuffer download(CudaDevice.Memory src, long offset, long bytes) {
    try (CudaDevice.Pinned pinned = dev.allocPinned(Math.max(1, Math.min(bytes, chunkBytes)))) {
      return download(src, offset, bytes, pinned, streams[0]);
    }
  }

  /** A host tensor of {@code dtype} and {@code shape} from device bytes at {@code offset}. */
  Tensor downloadTensor(CudaDevice.Memory src, long offset, DType dtype, long... shape) {
    return Tensor.of(dtype, shape, download(src, offset, Tensor.numel(shape) * dtype.byteSize()));
  }

  /** The per-row stats the kernels wrote into {@code stats} ({@link CudaRowStats#BYTES} per row). */
  CudaRowStats downloadStats(CudaDevice.Memory stats) {
    return new CudaRowStats(download(stats, 0, (long) rowCount() * CudaRowStats.BYTES), rowCount());
  }
}
