package shardquant.kernels.backend.cuda;

import java.nio.ByteBuffer;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;

/**
 * A quantized tensor resident on a GPU: every stored part of a {@link QuantizedTensor} (codes, scales,
 * zeros, tables), in its own device buffer, owned by this one object and freed together by {@link #close}.
 * Made by {@link CudaBackend#toDevice(QuantizedTensor)}; {@link #toHost()} copies every part back into a
 * host {@link QuantizedTensor}. Neither direction ever dequantizes: bytes move unchanged, and no kernel
 * runs, so a part no dequantize-requantize round trip would give back (the pytorch/ao NF4 bug, where
 * {@code .to(device)} went through dequantization) returns byte for byte.
 *
 * <p>A {@link QuantizedTensor} is host memory (its parts are {@link Tensor}s, host buffers), and a GPU
 * allocation needs an explicit lifetime that QuantizedTensor (a value with no close) cannot give it. So
 * moving is two calls: {@code cuda.toDevice(q)} takes the whole tensor (no part can be left behind,
 * pytorch/ao #1310) and {@code toHost()} gives a whole host tensor back. {@link QuantizedTensor#dequantize} is the host's;
 * the device's explicit way back to floats is {@link #dequantize(DType)}, which the int4 tinygemm recipes
 * have a kernel for ({@link CudaInt4Repack}), as is {@link #repack(Int4Layout)}, switching layout on the
 * device without a host copy.
 *
 * <p>Transfers go through two pinned staging buffers of at most the backend's chunk size on one stream:
 * the host fills one buffer while the other uploads. Not thread safe; one owner at a time.
 */
public final class CudaQuantizedTensor implements AutoCloseable {
  /** One stored part in device memory: its dtype and shape, and the buffer holding exactly its bytes. */
  record Part(DType dtype, long[] shape, CudaDevice.Memory memory) {
    long bytes() {
      return Tensor.numel(shape) * dtype.byteSize();
    }
  }

  private final Gpu gpu;
  private final QuantConfig config;
  private final long[] shape;
  private final DType originalDType;
  private final Map<String, Part> parts;
  private boolean closed;

  /** Takes ownership of {@code parts}' buffers. */
  CudaQuantizedTensor(Gpu gpu, QuantConfig config, long[] shape, DType originalDType, Map<String, Part> parts) {
    if (!config.recipe().dataNames().equals(List.copyOf(parts.keySet()))) {
      throw new IllegalArgumentException(config.recipe().cliName() + " stores " + config.recipe().dataNames()
          + ", got parts " + parts.keySet());
    }
    this.gpu = gpu;
    this.config = config;
    this.shape = shape.clone();
    this.originalDType = originalDType;
    this.parts = Collections.unmodifiableMap(new LinkedHashMap<>(parts));
  }

  /** Every part of host tensor {@code q} copied to {@code gpu}'s device. */
  static CudaQuantizedTensor upload(Gpu gpu, QuantizedTensor q) {
    Map<String, Part> parts = new LinkedHashMap<>();
    boolean done = false;
    try (Transfer t = new Transfer(gpu, maxBytes(q.parts().values()))) {
      q.parts().forEach((name, part) -> parts.put(name, new Part(part.dtype(), part.shape(), t.upload(part))));
      t.synchronize();
      CudaQuantizedTensor resident = new CudaQuantizedTensor(gpu, q.config(), q.shape(), q.originalDType(), parts);
      done = true;
      return resident;
    } finally {
      if (!done) {
        parts.values().forEach(p -> p.memory().close());
      }
    }
  }

  /** Every part copied back to a host tensor, bytes unchanged; nothing is dequantized. */
  public QuantizedTensor toHost() {
    checkOpen();
    Map<String, Tensor> host = new LinkedHashMap<>();
    try (Transfer t = new Transfer(gpu, parts.values().stream().mapToLong(Part::bytes).max().orElse(1))) {
      parts.forEach((name, p) -> host.put(name, t.download(p)));
    }
    return new QuantizedTensor(config, shape, originalDType, host);
  }

  /**
   * The dequantized values, computed on the device: byte for byte {@code toHost().dequantize(out)}. The int4
   * tinygemm recipes ({@code int4-tile-packed}, {@code int4-cpu}) have a kernel; other recipes are refused
   * (download them with {@link #toHost()} and dequantize there).
   */
  public Tensor dequantize(DType out) {
    checkOpen();
    return new CudaInt4Repack(gpu).dequantize(this, out);
  }

  /**
   * The same codes, scales and zeros in {@code target}'s layout ({@link Int4Layout#TILE_PACKED} or
   * {@link Int4Layout#CPU}, the layouts a recipe writes), converted on the device: a new resident tensor,
   * this one left as it is (close it to keep one copy). This tensor itself if it is already there.
   */
  public CudaQuantizedTensor repack(Int4Layout target) {
    checkOpen();
    return new CudaInt4Repack(gpu).repack(this, target);
  }

  public QuantConfig config() {
    return config;
  }

  /** The shape of the original (unpadded) high-precision tensor or row shard. */
  public long[] shape() {
    return shape.clone();
  }

  public DType originalDType() {
    return originalDType;
  }

  /** The parts' names, in torchao's {@code _tensor_data_names} order. */
  public List<String> partNames() {
    return List.copyOf(parts.keySet());
  }

  /** Device bytes the parts hold. */
  public long deviceBytes() {
    return parts.values().stream().mapToLong(Part::bytes).sum();
  }

  public CudaDevice device() {
    return gpu.device();
  }

  Gpu gpu() {
    return gpu;
  }

  Map<String, Part> parts() {
    checkOpen();
    return parts;
  }

  Part part(String name) {
    Part p = parts().get(name);
    if (p == null) {
      throw new IllegalArgumentException(config.recipe().cliName() + " has no part '" + name + "'; it has " + parts.keySet());
    }
    return p;
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException(this + " is closed");
    }
  }

  /** Frees every part's device memory; the tensor is unusable afterwards. Closing twice does nothing. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    RuntimeException first = null;
    for (Part p : parts.values()) {
      try {
        p.memory().close();
      } catch (RuntimeException e) {
        first = first == null ? e : first;
      }
    }
    if (first != null) {
      throw first;
    }
  }

  @Override
  public String toString() {
    return config + " " + java.util.Arrays.toString(shape) + " on " + gpu.device().description()
        + (closed ? " (closed)" : "");
  }

  private static long maxBytes(java.util.Collection<Tensor> tensors) {
    return tensors.stream().mapToLong(Tensor::byteSize).max().orElse(1);
  }

  /**
   * Host-device copies on one stream through two pinned staging buffers of at most the chunk size: chunk i
   * goes through buffer i % 2, and a buffer is refilled only after the stream ran past its last upload.
   */
  static final class Transfer extends DeviceScope {
    private final long chunk;
    private final CudaDevice.Stream stream;
    private final CudaDevice.Pinned[] staging = new CudaDevice.Pinned[2];
    private long chunks;

    /** {@code largest}: the largest transfer expected, so small tensors get small staging buffers. */
    Transfer(Gpu gpu, long largest) {
      super(gpu.device());
      this.chunk = Math.max(1, Math.min(gpu.chunkBytes(), largest));
      this.stream = newStream();
    }

    CudaDevice.Stream stream() {
      return stream;
    }

    private CudaDevice.Pinned staging(int i) {
      if (staging[i] == null) {
        staging[i] = own(dev.allocPinned(chunk));
      }
      return staging[i];
    }

    /** New device memory holding {@code t}'s bytes (queued; {@link #synchronize} before relying on them). */
    CudaDevice.Memory upload(Tensor t) {
      CudaDevice.Memory m = dev.alloc(Math.max(1, t.byteSize()));
      try {
        upload(t.bytes(), m.at(0));
        return m;
      } catch (RuntimeException e) {
        quietSynchronize(); // earlier chunks may still be copying into m
        m.close();
        throw e;
      }
    }

    /** Queues a copy of {@code src}'s remaining bytes to {@code dst}. */
    void upload(ByteBuffer src, CudaDevice.Ptr dst) {
      ByteBuffer from = src.duplicate();
      long done = 0;
      while (from.hasRemaining()) {
        int k = (int) (chunks & 1);
        if (chunks >= 2) {
          dev.synchronize(stream); // buffer k's previous upload has run
        }
        chunks++;
        int n = (int) Math.min(chunk, from.remaining());
        ByteBuffer pinned = staging(k).buffer().duplicate();
        pinned.clear();
        ByteBuffer piece = from.slice();
        piece.limit(n);
        pinned.put(piece);
        from.position(from.position() + n);
        dev.copyToDevice(staging(k), 0, dst.memory().at(dst.offset() + done), n, stream);
        done += n;
      }
    }

    /** A host tensor holding part {@code p}'s bytes (waits for everything queued before). */
    Tensor download(Part p) {
      return Tensor.of(p.dtype(), p.shape(), download(p.memory(), p.bytes()));
    }

    /** The first {@code bytes} bytes of {@code src} in a new heap buffer (waits for everything queued before). */
    ByteBuffer download(CudaDevice.Memory src, long bytes) {
      return download(src, 0, bytes, staging(0), stream);
    }

    void synchronize() {
      dev.synchronize(stream);
    }

    /** {@link #synchronize}, for failure paths: a failure of its own is left to the caller's exception. */
    void quietSynchronize() {
      try {
        dev.synchronize(stream);
      } catch (RuntimeException ignored) {
        // the device already failed; the exception being handled says how
      }
    }
  }
}
