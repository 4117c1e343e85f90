package shardquant.kernels.backend.cuda;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.UnpackedInt4.Padding;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.repack.TinygemmInt4Tensor;
import shardquant.kernels.tensor.Tensor;

/**
 * tinygemm int4 layout conversion and dequantization on the GPU: {@code int4_unpack}
 * (src/main/cuda/int4_unpack.cu). Byte for byte {@link TinygemmInt4Tensor#repack} and
 * {@link TinygemmInt4Tensor#dequantize}: a repack unpacks the source layout to uint8 codes [N][K] and bf16
 * scale and zero [N][K/g] on the device, then packs those into the target layout, all queued on one stream
 * with one host round trip at the end (the check count); a dequantize reads the packed nibbles and scales
 * straight into the output dtype. Tensors the kernels do not take as they are (parts of another shape than
 * the layout's, which the reference refuses) and tensors the kernels flag (tile-packed padding that is not
 * torchao's zero padding, plain codes outside -8..7) go to the reference, which refuses them with its own
 * message, so both backends fail alike.
 *
 * <p>Host tensors ({@link #repack(TinygemmInt4Tensor, Int4Layout)}, {@link #dequantize(TinygemmInt4Tensor, DType)})
 * are uploaded, converted and downloaded; {@link CudaQuantizedTensor}s convert in device memory.
 */
public final class CudaInt4Repack {
  private static final int INNER_K_TILES = Int4Layout.INNER_K_TILES;
  private static final int THREADS = 256;
  private static final int MAX_BLOCKS = 1 << 16;
  private static final int TILE = 0;
  private static final int CPU = 1;
  private static final int PLAIN = 2;

  private final Gpu gpu;

  CudaInt4Repack(Gpu gpu) {
    this.gpu = gpu;
  }

  /**
   * Where a stored tensor's parts lie and its geometry: the original rows x cols, the stored (padded, for
   * tile-packed) srcN x srcK, and scale_and_zero's [szGroups][szN] (tile-packed, cpu).
   */
  private record Stored(Int4Layout layout, int groupSize, int rows, int cols, int srcN, int srcK, int szN,
      int szGroups, Map<String, CudaQuantizedTensor.Part> parts) {
    CudaDevice.Memory mem(String name) {
      return parts.get(name).memory();
    }
  }

  // ---- host tensors ---------------------------------------------------------------------------------------

  /** {@code t} in {@code target}'s layout, converted on the device; {@code t} itself if it is already there. */
  public TinygemmInt4Tensor repack(TinygemmInt4Tensor t, Int4Layout target) {
    if (target == t.layout()) {
      return t;
    }
    String refusal = t.refusal(target);
    if (refusal != null) {
      throw new IllegalArgumentException(t + ": " + refusal);
    }
    Map<String, CudaQuantizedTensor.Part> uploaded = new LinkedHashMap<>();
    try (CudaQuantizedTensor.Transfer io = new CudaQuantizedTensor.Transfer(gpu, largest(t.parts()))) {
      Stored src = stored(t.layout(), t.groupSize(), t.shape(), shapes(t.parts()), uploaded);
      if (src == null) {
        return t.repack(target); // the reference refuses the shapes with its message
      }
      t.parts().forEach((name, p) -> uploaded.put(name, new CudaQuantizedTensor.Part(p.dtype(), p.shape(), io.upload(p))));
      Map<String, CudaQuantizedTensor.Part> out = convert(io, src, target);
      if (out == null) {
        return t.repack(target); // flagged padding or codes: the reference refuses with its message
      }
      try {
        Map<String, Tensor> host = new LinkedHashMap<>();
        out.forEach((name, p) -> host.put(name, io.download(p)));
        return new TinygemmInt4Tensor(target, t.groupSize(), t.shape(), host);
      } finally {
        closeAll(out);
      }
    } finally {
      closeAll(uploaded);
    }
  }

  /** {@link TinygemmInt4Tensor#dequantize}'s values of {@code t}, computed on the device. */
  public Tensor dequantize(TinygemmInt4Tensor t, DType out) {
    CudaKernels.dtype(out);
    Map<String, CudaQuantizedTensor.Part> uploaded = new LinkedHashMap<>();
    long outBytes = hostBytes(t.shape(), out);
    try (CudaQuantizedTensor.Transfer io = new CudaQuantizedTensor.Transfer(gpu, Math.max(outBytes, largest(t.parts())))) {
      Stored src = stored(t.layout(), t.groupSize(), t.shape(), shapes(t.parts()), uploaded);
      if (src == null) {
        return t.dequantize(out);
      }
      t.parts().forEach((name, p) -> uploaded.put(name, new CudaQuantizedTensor.Part(p.dtype(), p.shape(), io.upload(p))));
      return dequantize(io, src, out);
    } finally {
      closeAll(uploaded);
    }
  }

  // ---- resident tensors -----------------------------------------------------------------------------------

  /** A resident int4 tensor in {@code target}'s layout (tile-packed or cpu), converted in device memory. */
  CudaQuantizedTensor repack(CudaQuantizedTensor t, Int4Layout target) {
    Int4Layout from = Int4Layout.of(t.config().recipe());
    if (from == null) {
      throw new IllegalArgumentException("repack converts int4-tile-packed and int4-cpu tensors, got " + t
          + "; its codes are not tinygemm's");
    }
    if (target.recipe() == null) {
      throw new IllegalArgumentException("a resident tensor converts to the layouts a recipe writes (tile-packed, cpu),"
          + " not " + target.cliName() + "; download the " + target.cliName() + " form with repack(TinygemmInt4Tensor, "
          + "Int4Layout)");
    }
    if (target == from) {
      return t;
    }
    int g = t.config().groupSize();
    String refusal = target.refusal(t.shape()[0], t.shape()[1], g);
    if (refusal != null) {
      throw new IllegalArgumentException(t + ": " + refusal);
    }
    try (CudaQuantizedTensor.Transfer io = new CudaQuantizedTensor.Transfer(gpu, 4)) {
      Stored src = stored(from, g, t.shape(), partShapes(t), t.parts());
      Map<String, CudaQuantizedTensor.Part> out = src == null ? null : convert(io, src, target);
      if (out == null) {
        // The reference's refusal (shapes, padding), or its result should it take the tensor after all.
        TinygemmInt4Tensor host = TinygemmInt4Tensor.of(t.toHost()).repack(target);
        return CudaQuantizedTensor.upload(gpu, host.toQuantized());
      }
      return new CudaQuantizedTensor(gpu, new QuantConfig(target.recipe(), g, t.config().bits()), t.shape(),
          t.originalDType(), out);
    }
  }

  /** A resident int4 tensor's values, computed on the device. */
  Tensor dequantize(CudaQuantizedTensor t, DType out) {
    Int4Layout from = Int4Layout.of(t.config().recipe());
    if (from == null) {
      throw new IllegalStateException("dequantize on the device has a kernel for int4-tile-packed and int4-cpu, not "
          + t.config().recipe().cliName() + "; download it with toHost() and dequantize there");
    }
    CudaKernels.dtype(out);
    long outBytes = hostBytes(t.shape(), out);
    try (CudaQuantizedTensor.Transfer io = new CudaQuantizedTensor.Transfer(gpu, outBytes)) {
      Stored src = stored(from, t.config().groupSize(), t.shape(), partShapes(t), t.parts());
      return src == null ? t.toHost().dequantize(out) : dequantize(io, src, out);
    }
  }

  /** The bytes of a [rows, cols] host tensor of {@code out}, refused up front if one host buffer cannot hold them. */
  private static long hostBytes(long[] shape, DType out) {
    long bytes = shape[0] * shape[1] * out.byteSize();
    if (bytes > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("dequantizing " + java.util.Arrays.toString(shape) + " to " + out + " needs " + bytes
          + " bytes, more than one host buffer holds (2 GiB): dequantize row ranges (loader.Checkpoint.dequantizeRows)");
    }
    return bytes;
  }

  // ---- geometry -------------------------------------------------------------------------------------------

  /**
   * The geometry of a tensor whose parts the kernels take as they are, or null where the reference must
   * decide (it refuses such parts). The same checks as {@link Int4Layout}'s unpack: tile-packed
   * scale_and_zero bf16 [K'/g][N'][2] covering the weight with qdata int32 of the tiled shape for N' x K'; the
   * other forms exactly their {@link Int4Layout#parts}.
   */
  private static Stored stored(Int4Layout layout, int g, long[] shape, Map<String, PartShape> parts,
      Map<String, CudaQuantizedTensor.Part> memory) {
    int rows = Math.toIntExact(shape[0]);
    int cols = Math.toIntExact(shape[1]);
    if (layout == Int4Layout.TILE_PACKED) {
      PartShape sz = parts.get("scale_and_zero");
      PartShape q = parts.get("qdata");
      if (sz == null || q == null || sz.dtype() != DType.BF16 || sz.shape().length != 3 || sz.shape()[2] != 2
          || sz.shape()[1] < rows || sz.shape()[0] * g < cols || q.dtype() != DType.I32) {
        return null;
      }
      long n = sz.shape()[1];
      long k = sz.shape()[0] * g;
      if (n % 8 != 0 || k % (16 * INNER_K_TILES) != 0 || n * k > Integer.MAX_VALUE
          || !java.util.Arrays.equals(q.shape(), new long[] {n / 8, k / (16 * INNER_K_TILES), 32, INNER_K_TILES / 2})) {
        return null;
      }
      return new Stored(layout, g, rows, cols, (int) n, (int) k, (int) n, (int) (k / g), memory);
    }
    if (layout.refusal(rows, cols, g) != null || (long) rows * cols > Integer.MAX_VALUE) {
      return null;
    }
    for (PartSpec spec : layout.parts(rows, cols, g)) {
      PartShape p = parts.get(spec.name());
      if (p == null || p.dtype() != spec.dtype() || !java.util.Arrays.equals(p.shape(), spec.shape())) {
        return null;
      }
    }
    return new Stored(layout, g, rows, cols, rows, cols, rows, cols / g, memory);
  }

  private record PartShape(DType dtype, long[] shape) {}

  private static Map<String, PartShape> shapes(Map<String, Tensor> parts) {
    Map<String, PartShape> out = new LinkedHashMap<>();
    parts.forEach((name, t) -> out.put(name, new PartShape(t.dtype(), t.shape())));
    return out;
  }

  private static Map<String, PartShape> partShapes(CudaQuantizedTensor t) {
    Map<String, PartShape> out = new LinkedHashMap<>();
    t.parts().forEach((name, p) -> out.put(name, new PartShape(p.dtype(), p.shape())));
    return out;
  }

  // ---- kernels --------------------------------------------------------------------------------------------

  /**
   * {@code src} converted to {@code target}: new device parts (the caller owns them), or null (nothing left
   * allocated) when the kernels flagged padding or codes the reference refuses.
   */
  private Map<String, CudaQuantizedTensor.Part> convert(CudaQuantizedTensor.Transfer io, Stored src, Int4Layout target) {
    CudaDevice dev = gpu.device();
    CudaDevice.Stream s = io.stream();
    int n = src.rows();
    int k = src.cols();
    int g = src.groupSize();
    int groups = k / g;
    Padding pad = Padding.of(g);
    List<PartSpec> specs = target.parts(n, k, g);
    Map<String, CudaQuantizedTensor.Part> out = new LinkedHashMap<>();
    boolean done = false;
    try (CudaDevice.Memory codes = dev.alloc(Math.max(1, (long) n * k));
        CudaDevice.Memory bad = dev.alloc(4)) {
      // Unpacked scale and zero [n][groups]: the plain form's own parts, or fresh buffers from scale_and_zero.
      CudaDevice.Memory scale;
      CudaDevice.Memory zero;
      List<CudaDevice.Memory> temporary = new java.util.ArrayList<>();
      try {
        io.upload(java.nio.ByteBuffer.allocate(4), bad.at(0));
        dev.launch(s, "int4_unpack_codes", blocks(units(src.layout(), src.srcN(), src.srcK())), THREADS, 0,
            id(src.layout()), src.mem("qdata"), n, k, src.srcN(), src.srcK(), INNER_K_TILES, pad.code(), codes, bad);
        if (src.layout() == Int4Layout.PLAIN) {
          scale = src.mem("scale");
          zero = src.mem("zero_point");
        } else {
          scale = dev.alloc(Math.max(1, 2L * n * groups));
          temporary.add(scale);
          zero = dev.alloc(Math.max(1, 2L * n * groups));
          temporary.add(zero);
          dev.launch(s, "int4_unpack_scale_zero", blocks((long) src.szN() * src.szGroups()), THREADS, 0,
              src.mem("scale_and_zero"), n, groups, src.szN(), src.szGroups(), pad.scaleBits() & 0xFFFF, pad.zeroBits() & 0xFFFF,
              scale, zero, bad);
        }
        for (PartSpec spec : specs) {
          long[] shape = spec.shape();
          if (target == Int4Layout.PLAIN && !spec.name().equals("qdata")) {
            CudaDevice.Memory m = spec.name().equals("scale") ? scale : zero;
            temporary.remove(m); // handed over to the result
            out.put(spec.name(), new CudaQuantizedTensor.Part(spec.dtype(), shape, m));
            continue;
          }
          CudaDevice.Memory m = dev.alloc(Math.max(1, Tensor.numel(shape) * spec.dtype().byteSize()));
          out.put(spec.name(), new CudaQuantizedTensor.Part(spec.dtype(), shape, m));
          if (spec.name().equals("qdata")) {
            int dstN = target == Int4Layout.TILE_PACKED ? Math.toIntExact(shape[0] * 8) : n;
            int dstK = target == Int4Layout.TILE_PACKED ? Math.toIntExact(shape[1] * 16 * INNER_K_TILES) : k;
            dev.launch(s, "int4_pack_codes", blocks(units(target, dstN, dstK)), THREADS, 0, id(target), codes, n, k,
                dstN, dstK, INNER_K_TILES, pad.code(), m);
          } else { // scale_and_zero [szGroups][szN][2]
            int szGroups = Math.toIntExact(shape[0]);
            int szN = Math.toIntExact(shape[1]);
            dev.launch(s, "int4_pack_scale_zero", blocks((long) szN * szGroups), THREADS, 0, scale, zero, n, groups,
                szN, szGroups, pad.scaleBits() & 0xFFFF, pad.zeroBits() & 0xFFFF, m);
          }
        }
        int flagged = io.download(bad, 4).getInt(0);
        done = flagged == 0;
        return done ? out : null;
      } finally {
        // Nothing queued may still use what is freed here (a failed alloc or launch leaves kernels queued).
        io.quietSynchronize();
        temporary.forEach(CudaDevice.Memory::close);
      }
    } finally {
      if (!done) {
        closeAll(out);
      }
    }
  }

  /** {@code src} dequantized to a host tensor [rows][cols] of {@code out}. */
  private Tensor dequantize(CudaQuantizedTensor.Transfer io, Stored src, DType out) {
    CudaDevice dev = gpu.device();
    long count = (long) src.rows() * src.cols();
    long bytes = count * out.byteSize();
    try (CudaDevice.Memory values = dev.alloc(Math.max(1, bytes))) {
      boolean plain = src.layout() == Int4Layout.PLAIN;
      CudaDevice.Memory scale = src.mem(plain ? "scale" : "scale_and_zero");
      CudaDevice.Memory zero = plain ? src.mem("zero_point") : scale;
      dev.launch(io.stream(), "int4_dequantize", blocks(count), THREADS, 0, id(src.layout()), src.mem("qdata"), scale,
          zero, src.rows(), src.cols(), src.srcK(), INNER_K_TILES, src.groupSize(), src.szN(), CudaKernels.dtype(out),
          values);
      return Tensor.of(out, new long[] {src.rows(), src.cols()}, io.download(values, bytes));
    }
  }

  /** The storage units a kernel walks: tile words (8 codes), cpu bytes (2 codes), plain bytes. */
  private static long units(Int4Layout layout, long n, long k) {
    return switch (layout) {
      case TILE_PACKED -> n * k / 8;
      case CPU -> n * k / 2;
      case PLAIN -> n * k;
    };
  }

  private static int id(Int4Layout layout) {
    return switch (layout) {
      case TILE_PACKED -> TILE;
      case CPU -> CPU;
      case PLAIN -> PLAIN;
    };
  }

  private static int blocks(long items) {
    return Math.min(MAX_BLOCKS, CudaKernels.blocks(items, THREADS));
  }

  private static long largest(Map<String, Tensor> parts) {
    return parts.values().stream().mapToLong(Tensor::byteSize).max().orElse(1);
  }

  private static void closeAll(Map<String, CudaQuantizedTensor.Part> parts) {
    if (parts != null) {
      parts.values().forEach(p -> p.memory().close());
      parts.clear();
    }
  }
}
