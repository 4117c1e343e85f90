package shardquant.kernels.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * Streams a safetensors file: the header is written first (every size is known up front), then the
 * tensors' bytes in the declared order, in chunks of any size. Everything goes to a hidden temporary
 * file beside the target, which {@link #commit()} syncs and renames into place; closing without a
 * commit deletes it. So a loader never sees a half-written file under the final name.
 */
public final class SafetensorsWriter implements AutoCloseable {
  /** A tensor to be written: its bytes follow in declaration order. */
  public record Declared(String name, DType dtype, long[] shape) implements java.io.Serializable {
    public Declared {
      shape = shape.clone();
    }

    public long byteSize() {
      return Tensor.numel(shape) * dtype.byteSize();
    }
  }

  private static final ObjectMapper JSON = new ObjectMapper();

  private final Path target;
  private final Path temp;
  private final FileChannel channel;
  private final long dataBytes;
  private long written;
  private boolean done;

  private SafetensorsWriter(Path target, Path temp, FileChannel channel, long dataBytes) {
    this.target = target;
    this.temp = temp;
    this.channel = channel;
    this.dataBytes = dataBytes;
  }

  /** Opens the temporary file and writes the header. */
  public static SafetensorsWriter create(Path target, List<Declared> tensors, Map<String, String> metadata)
      throws IOException {
    byte[] header = header(target.toString(), tensors, metadata);
    long dataBytes = 0;
    for (Declared d : tensors) {
      dataBytes += d.byteSize();
    }
    Path dir = target.toAbsolutePath().getParent();
    Path temp = dir.resolve("." + target.getFileName() + ".tmp-" + UUID.randomUUID());
    FileChannel channel = FileChannel.open(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
    SafetensorsWriter w = new SafetensorsWriter(target, temp, channel, dataBytes);
    try {
      ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
      w.writeFully(length);
      w.writeFully(ByteBuffer.wrap(header));
    } catch (IOException | RuntimeException e) {
      w.close();
      throw e;
    }
    return w;
  }

  /** Writes tensors whole; the map's order is the file's order. */
  public static void write(Path target, Map<String, Tensor> tensors, Map<String, String> metadata) throws IOException {
    List<Declared> declared = new ArrayList<>();
    tensors.forEach((name, t) -> declared.add(new Declared(name, t.dtype(), t.shape())));
    try (SafetensorsWriter w = create(target, declared, metadata)) {
      for (Tensor t : tensors.values()) {
        w.write(t.bytes());
      }
      w.commit();
    }
  }

  /**
   * The header bytes (without the 8-byte length): JSON padded with spaces to a multiple of 8, as the
   * reference writer pads it. Tensors follow in declaration order from data byte 0, without gaps.
   */
  public static byte[] header(String target, List<Declared> tensors, Map<String, String> metadata) throws IOException {
    ObjectNode root = JSON.createObjectNode();
    if (metadata != null && !metadata.isEmpty()) {
      ObjectNode meta = root.putObject("__metadata__");
      metadata.forEach(meta::put);
    }
    Set<String> names = new HashSet<>();
    long offset = 0;
    for (Declared d : tensors) {
      if (d.name().equals("__metadata__") || !names.add(d.name())) {
        throw new SafetensorsFormatException(target, d.name(), "tensor name is reserved or declared twice");
      }
      ObjectNode e = root.putObject(d.name());
      e.put("dtype", d.dtype().safetensorsName());
      ArrayNode shape = e.putArray("shape");
      for (long s : d.shape()) {
        shape.add(s);
      }
      long end = offset + d.byteSize();
      e.putArray("data_offsets").add(offset).add(end);
      offset = end;
    }
    byte[] json = JSON.writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
    int padded = (json.length + 7) / 8 * 8;
    byte[] out = new byte[padded];
    System.arraycopy(json, 0, out, 0, json.length);
    for (int i = json.length; i < padded; i++) {
      out[i] = ' ';
    }
    return out;
  }

  /** Appends the next bytes of the data section (they may span tensors). */
  public void write(ByteBuffer chunk) throws IOException {
    if (done) {
      throw new IllegalStateException("writer for " + target + " is already committed or closed");
    }
    if (written + chunk.remaining() > dataBytes) {
      throw new IllegalStateException("writing " + chunk.remaining() + " bytes at data byte " + written + " of "
          + target + " exceeds the declared " + dataBytes + " bytes");
    }
    written += chunk.remaining();
    writeFully(chunk.duplicate());
  }

  /** Checks every declared byte was written, syncs, and renames the file into place. */
  public void commit() throws IOException {
    if (written != dataBytes) {
      throw new IllegalStateException(target + ": " + written + " of " + dataBytes + " data bytes written at commit");
    }
    channel.force(true);
    channel.close();
    try {
      Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING);
    }
    done = true;
  }

  private void writeFully(ByteBuffer b) throws IOException {
    while (b.hasRemaining()) {
      channel.write(b);
    }
  }

  /** Deletes the temporary file unless committed; safe to call twice. */
  @Override
  public void close() throws IOException {
    if (!done) {
      done = true;
      channel.close();
      Files.deleteIfExists(temp);
    }
  }
}
