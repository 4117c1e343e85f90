package shardquant.kernels.safetensors;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import shardquant.kernels.tensor.Tensor;

/**
 * Reads a safetensors file: an 8-byte little-endian header length, a JSON header, then the data
 * section (https://github.com/huggingface/safetensors, "Format"). Opening reads and validates only the
 * header; tensor bytes are memory-mapped on demand, one tensor or one row range at a time, so files
 * over 2 GiB work and nothing is read that is not asked for.
 *
 * <p>Validation is {@link SafetensorsHeader}'s.
 */
public final class SafetensorsFile implements AutoCloseable {
  public static final long MAX_HEADER_BYTES = SafetensorsHeader.MAX_HEADER_BYTES;

  private final Path path;
  private final FileChannel channel;
  private final long dataStart;
  private final Map<String, TensorEntry> entries;
  private final Map<String, String> metadata;

  private SafetensorsFile(Path path, FileChannel channel, long dataStart, Map<String, TensorEntry> entries,
      Map<String, String> metadata) {
    this.path = path;
    this.channel = channel;
    this.dataStart = dataStart;
    this.entries = entries;
    this.metadata = metadata;
  }

  public static SafetensorsFile open(Path path) throws IOException {
    FileChannel channel;
    try {
      channel = FileChannel.open(path, StandardOpenOption.READ);
    } catch (NoSuchFileException e) {
      throw new SafetensorsFormatException(path, null, "no such file");
    }
    try {
      return readHeader(path, channel);
    } catch (IOException | RuntimeException e) {
      channel.close();
      throw e;
    }
  }

  private static SafetensorsFile readHeader(Path path, FileChannel channel) throws IOException {
    SafetensorsHeader h = SafetensorsHeader.read(path.toString(), channel.size(),
        (position, into) -> readFully(channel, into, position));
    return new SafetensorsFile(path, channel, h.dataStart(), h.entries(), h.metadata());
  }

  public Path path() {
    return path;
  }

  /** Byte offset of the data section in the file (8 + header length). */
  public long dataStart() {
    return dataStart;
  }

  /** All tensors, in header order. */
  public List<TensorEntry> entries() {
    return List.copyOf(entries.values());
  }

  public boolean has(String name) {
    return entries.containsKey(name);
  }

  public TensorEntry entry(String name) throws SafetensorsFormatException {
    TensorEntry e = entries.get(name);
    if (e == null) {
      throw new SafetensorsFormatException(path, name, "no such tensor in this file");
    }
    return e;
  }

  public Map<String, String> metadata() {
    return metadata;
  }

  /** The whole tensor, memory-mapped (read-only view). */
  public Tensor read(String name) throws IOException {
    TensorEntry e = entry(name);
    return Tensor.of(e.dtype(), e.shape(), map(e, e.begin(), e.byteSize()));
  }

  /** Rows [from, to) of the tensor's first dimension, mapping only those bytes. */
  public Tensor readRows(String name, long from, long to) throws IOException {
    TensorEntry e = entry(name);
    long[] shape = e.shape();
    if (shape.length == 0 || from < 0 || to > shape[0] || from > to) {
      throw new SafetensorsFormatException(path, name, "rows [" + from + ", " + to + ") are outside shape "
          + java.util.Arrays.toString(shape));
    }
    long rowBytes = e.rowBytes();
    shape[0] = to - from;
    return Tensor.of(e.dtype(), shape, map(e, e.begin() + from * rowBytes, (to - from) * rowBytes));
  }

  /**
   * Bytes [offset, offset + length) of the tensor's data, memory-mapped (read-only view): for slices
   * that are not whole rows of the first dimension, such as a column run of a part stored [K/g][N][2].
   */
  public ByteBuffer readBytes(String name, long offset, long length) throws IOException {
    TensorEntry e = entry(name);
    if (offset < 0 || length < 0 || offset > e.byteSize() - length) {
      throw new SafetensorsFormatException(path, name, "bytes [" + offset + ", " + (offset + length)
          + ") are outside the tensor's " + e.byteSize() + " bytes");
    }
    return map(e, e.begin() + offset, length);
  }

  private ByteBuffer map(TensorEntry e, long offset, long length) throws IOException {
    if (length > Integer.MAX_VALUE) {
      throw new SafetensorsFormatException(path, e.name(), length
          + " bytes cannot be mapped as one buffer; read it in row ranges of under 2 GiB");
    }
    if (length == 0) {
      return ByteBuffer.allocate(0).order(ByteOrder.LITTLE_ENDIAN);
    }
    return channel.map(FileChannel.MapMode.READ_ONLY, dataStart + offset, length).order(ByteOrder.LITTLE_ENDIAN);
  }

  private static void readFully(FileChannel channel, ByteBuffer into, long position) throws IOException {
    while (into.hasRemaining()) {
      int n = channel.read(into, position + into.position());
      if (n < 0) {
        throw new IOException("unexpected end of file");
      }
    }
  }

  @Override
  public void close() throws IOException {
    channel.close();
  }
}
