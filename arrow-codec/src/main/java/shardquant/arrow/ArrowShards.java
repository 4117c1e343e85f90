package shardquant.arrow;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channel;
import java.nio.channels.FileChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.UUID;
import java.util.function.Function;
import org.apache.arrow.flatbuf.MessageHeader;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.VectorLoader;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowFileReader;
import org.apache.arrow.vector.ipc.ArrowFileWriter;
import org.apache.arrow.vector.ipc.ArrowStreamWriter;
import org.apache.arrow.vector.ipc.ReadChannel;
import org.apache.arrow.vector.ipc.message.ArrowBlock;
import org.apache.arrow.vector.ipc.message.ArrowFieldNode;
import org.apache.arrow.vector.ipc.message.ArrowRecordBatch;
import org.apache.arrow.vector.ipc.message.MessageMetadataResult;
import org.apache.arrow.vector.ipc.message.MessageSerializer;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.apache.arrow.vector.util.ValueVectorUtility;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * Tensor shards and quantized shards as Arrow record batches, Arrow IPC streams (to move through
 * Spark) and Arrow IPC files (random access, readable by {@code pyarrow.ipc.open_file}).
 *
 * <p>Both schemas carry the metadata {@code shardquant.schema_version = "1"} and
 * {@code shardquant.kind}; readers check both. Every column is non-nullable. Tensor bytes are stored
 * exactly as safetensors stores them: row-major, little-endian, {@code dtype} named as safetensors
 * names it ("BF16", "F32", "I8", ...), and {@code shape} the shape of those bytes.
 *
 * <pre>
 * kind = "tensor_shard": one row, rows [row_start, row_end) of input tensor `tensor`
 *   tensor        utf8            name of the input tensor
 *   tensor_shape  list&lt;int64&gt;     shape of the whole input tensor
 *   row_start     int64           first row (of dimension 0) in this shard
 *   row_end       int64           one past the last row
 *   dtype         utf8            safetensors dtype name
 *   shape         list&lt;int64&gt;     shape of this shard: [row_end - row_start, tensor_shape[1:]...]
 *                                 ([] for a scalar, shipped whole as rows [0, 1))
 *   data          large_binary    the shard's bytes
 *
 * kind = "quantized_shard": one row per stored part, in stored order, of input tensor `tensor`'s
 * rows [row_start, row_end); the first three columns repeat the same values in every row
 *   tensor        utf8            name of the original (input) tensor
 *   row_start     int64
 *   row_end       int64
 *   key           utf8            stored key, e.g. "a.b._weight_qdata" (a copied tensor: its own name)
 *   row_dim       int32           dimension of the full stored tensor that grows with the original
 *                                 rows; -1: replicated, every shard holds the whole part
 *   dtype         utf8            safetensors dtype name of the part
 *   shape         list&lt;int64&gt;     shape of this shard's piece of the part
 *   data          large_binary    the piece's bytes
 * </pre>
 *
 * <p>{@code data} is large_binary (64-bit offsets) so a part over 2 GiB is representable, although a
 * host {@link Tensor} view of it is not. Decoded Tensors are little-endian views of the batch's
 * off-heap data buffer; they are valid until the {@link ShardBatch} is closed.
 */
public final class ArrowShards {
  public static final int SCHEMA_VERSION = 1;
  public static final String VERSION_KEY = "shardquant.schema_version";
  public static final String KIND_KEY = "shardquant.kind";

  private static final String TENSOR_SHARD = "tensor_shard";
  private static final String QUANTIZED_SHARD = "quantized_shard";
  private static final ArrowType INT64 = new ArrowType.Int(64, true);
  private static final ArrowType INT32 = new ArrowType.Int(32, true);

  private ArrowShards() {}

  /** Fills a shard's bytes in place; must fill {@code target} completely (position reaching limit). */
  public interface Filler {
    void fill(ByteBuffer target) throws IOException;
  }

  public static Schema tensorShardSchema() {
    return new Schema(List.of(utf8("tensor"), int64s("tensor_shape"), int64("row_start"), int64("row_end"),
        utf8("dtype"), int64s("shape"), binary("data")), metadata(TENSOR_SHARD));
  }

  public static Schema quantizedShardSchema() {
    return new Schema(List.of(utf8("tensor"), int64("row_start"), int64("row_end"), utf8("key"),
        Field.notNullable("row_dim", INT32), utf8("dtype"), int64s("shape"), binary("data")),
        metadata(QUANTIZED_SHARD));
  }

  /**
   * Builds a tensor-shard batch whose data bytes are filled in place (off-heap) by {@code fill}, which
   * receives a direct little-endian ByteBuffer of exactly the shard's byte length to fill completely
   * (e.g. from a Hadoop positioned read).
   */
  public static ShardBatch<TensorShard> tensorShard(String tensor, long[] tensorShape, long rowStart, long rowEnd,
      DType dtype, BufferAllocator allocator, Filler fill) throws IOException {
    Objects.requireNonNull(tensorShape, "tensorShape");
    Objects.requireNonNull(dtype, "dtype");
    Objects.requireNonNull(allocator, "allocator");
    Objects.requireNonNull(fill, "fill");
    if (tensor == null || tensor.isEmpty()) {
      throw new IllegalArgumentException("tensor shard needs a tensor name, got '" + tensor + "'");
    }
    long[] shape = TensorShard.shardShape(tensor, tensorShape, rowStart, rowEnd);
    long byteLength = Math.multiplyExact(Tensor.numel(shape), dtype.byteSize());
    if (byteLength > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("rows [" + rowStart + ", " + rowEnd + ") of tensor '" + tensor + "' are "
          + byteLength + " bytes, over the 2 GiB one buffer can hold: use smaller shards");
    }
    return build(tensorShardSchema(), allocator, root -> {
      putTensorShardHeader(root, tensor, tensorShape, rowStart, rowEnd, dtype, shape);
      ArrowBuf data = Columns.putBinaries(root, "data", new long[] {byteLength});
      ByteBuffer target = data.nioBuffer(0, (int) byteLength).order(ByteOrder.LITTLE_ENDIAN);
      fill.fill(target);
      if (target.hasRemaining()) {
        throw new IOException("filling rows [" + rowStart + ", " + rowEnd + ") of tensor '" + tensor + "' left "
            + target.remaining() + " of " + byteLength + " bytes unfilled");
      }
      return 1;
    }, ArrowShards::decodeTensorShard);
  }

  /** Same, copying the bytes of an existing TensorShard into Arrow memory. */
  public static ShardBatch<TensorShard> tensorShard(TensorShard s, BufferAllocator allocator) {
    Objects.requireNonNull(s, "shard");
    Objects.requireNonNull(allocator, "allocator");
    return build(tensorShardSchema(), allocator, root -> {
      putTensorShardHeader(root, s.tensor(), s.tensorShape(), s.rowStart(), s.rowEnd(), s.data().dtype(),
          s.data().shape());
      Columns.putBinaries(root, "data", new long[] {s.data().byteSize()}).setBytes(0, s.data().bytes());
      return 1;
    }, ArrowShards::decodeTensorShard);
  }

  public static ShardBatch<QuantizedShard> quantizedShard(QuantizedShard s, BufferAllocator allocator) {
    Objects.requireNonNull(s, "shard");
    Objects.requireNonNull(allocator, "allocator");
    List<ShardPart> parts = s.parts();
    return build(quantizedShardSchema(), allocator, root -> {
      Columns.allocate(root, parts.size(), "data");
      long[] lengths = new long[parts.size()];
      for (int i = 0; i < parts.size(); i++) {
        ShardPart p = parts.get(i);
        Columns.putUtf8(root, "tensor", i, s.tensor());
        Columns.putInt64(root, "row_start", i, s.rowStart());
        Columns.putInt64(root, "row_end", i, s.rowEnd());
        Columns.putUtf8(root, "key", i, p.key());
        Columns.putInt32(root, "row_dim", i, p.rowDim());
        Columns.putUtf8(root, "dtype", i, p.data().dtype().safetensorsName());
        Columns.putInt64s(root, "shape", i, p.data().shape());
        lengths[i] = p.data().byteSize();
      }
      ArrowBuf data = Columns.putBinaries(root, "data", lengths);
      long at = 0;
      for (int i = 0; i < parts.size(); i++) {
        data.setBytes(at, parts.get(i).data().bytes());
        at += lengths[i];
      }
      return parts.size();
    }, ArrowShards::decodeQuantizedShard);
  }

  /** Writes a batch's rows into a fresh root and returns their count. */
  private interface Rows<E extends Exception> {
    int write(VectorSchemaRoot root) throws E;
  }

  /** A batch of {@code schema} that {@code rows} fills; the root is closed if filling or decoding fails. */
  private static <T, E extends Exception> ShardBatch<T> build(Schema schema, BufferAllocator allocator, Rows<E> rows,
      Function<VectorSchemaRoot, ? extends T> decode) throws E {
    VectorSchemaRoot root = VectorSchemaRoot.create(schema, allocator);
    try {
      root.setRowCount(rows.write(root));
    } catch (Throwable t) {
      root.close();
      throw t;
    }
    return adopt(root, decode);
  }

  /**
   * Arrow IPC stream bytes of one batch (schema + one record batch), for moving through Spark. A Java
   * array holds under 2 GiB, which bounds the shard size this path can carry. The stream is written
   * twice: once to count its bytes (metadata only is built; no data is copied), then into an array of
   * exactly that size, so the batch's buffers are copied once, straight into the array returned.
   */
  public static byte[] toIpcStream(ShardBatch<?> batch) {
    ArrayChannel count = new ArrayChannel(null);
    writeStream(batch.root(), count);
    if (count.at > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException("a shard's Arrow IPC stream is " + count.at + " bytes, over the 2 GiB a Java array"
          + " holds: use smaller shards");
    }
    ArrayChannel bytes = new ArrayChannel(new byte[(int) count.at]);
    writeStream(batch.root(), bytes);
    if (bytes.at != bytes.array.length) {
      throw new IllegalStateException("the Arrow IPC stream came out " + bytes.at + " bytes the second time, "
          + bytes.array.length + " the first");
    }
    return bytes.array;
  }

  private static void writeStream(VectorSchemaRoot root, WritableByteChannel out) {
    try (ArrowStreamWriter writer = new ArrowStreamWriter(root, null, out)) {
      writer.start();
      writer.writeBatch();
      writer.end();
    } catch (IOException e) {
      throw new UncheckedIOException("writing an Arrow IPC stream to memory", e); // no real I/O happens
    }
  }

  /** A channel over memory: always open, nothing to release. */
  private abstract static class MemoryChannel implements Channel {
    @Override
    public boolean isOpen() {
      return true;
    }

    @Override
    public void close() {}
  }

  /**
   * A channel that writes into a byte array of the right size, or, given none, only counts. (Through
   * {@code Channels.newChannel(ByteArrayOutputStream)} each buffer was copied into a scratch array, then
   * into the stream's array, and once more by {@code toByteArray}.)
   */
  private static final class ArrayChannel extends MemoryChannel implements WritableByteChannel {
    private final byte[] array;
    private long at;

    ArrayChannel(byte[] array) {
      this.array = array;
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      int n = src.remaining();
      if (array == null) {
        src.position(src.limit());
      } else {
        if (n > array.length - at) {
          throw new IOException("the Arrow IPC stream outgrew the " + array.length + " bytes it was sized at");
        }
        src.get(array, (int) at, n);
      }
      at += n;
      return n;
    }
  }

  /** Reads a byte array into whatever buffer asks, one copy each (Channels.newChannel copies through a scratch array). */
  private static final class ArrayReadChannel extends MemoryChannel implements ReadableByteChannel {
    private final ByteBuffer src;

    ArrayReadChannel(byte[] bytes) {
      this.src = ByteBuffer.wrap(bytes);
    }

    @Override
    public int read(ByteBuffer dst) {
      if (!src.hasRemaining()) {
        return -1;
      }
      int n = Math.min(src.remaining(), dst.remaining());
      dst.put(src.slice(src.position(), n));
      src.position(src.position() + n);
      return n;
    }
  }

  /** Reads IPC stream bytes written by {@link #toIpcStream}; the kind and schema version must match. */
  public static ShardBatch<TensorShard> readTensorShard(byte[] ipcStream, BufferAllocator allocator) {
    return readStream(ipcStream, allocator, TENSOR_SHARD, ArrowShards::decodeTensorShard);
  }

  public static ShardBatch<QuantizedShard> readQuantizedShard(byte[] ipcStream, BufferAllocator allocator) {
    return readStream(ipcStream, allocator, QUANTIZED_SHARD, ArrowShards::decodeQuantizedShard);
  }

  /**
   * Writes the batch as an Arrow IPC file (random-access format) to {@code out}, creating parent
   * directories; it is written to a hidden temporary name beside {@code out} and renamed into place,
   * so {@code out} is never seen half written.
   */
  public static void writeIpcFile(ShardBatch<?> batch, Path out) throws IOException {
    VectorSchemaRoot root = batch.root();
    Path target = out.toAbsolutePath();
    Files.createDirectories(target.getParent());
    Path tmp = target.resolveSibling("." + target.getFileName() + "." + UUID.randomUUID() + ".tmp");
    try {
      try (FileChannel channel = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
          ArrowFileWriter writer = new ArrowFileWriter(root, null, channel)) {
        writer.start();
        writer.writeBatch();
        writer.end();
        channel.force(true);
      }
      Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (Throwable t) {
      try {
        Files.deleteIfExists(tmp);
      } catch (IOException e) {
        t.addSuppressed(e);
      }
      throw t;
    }
  }

  /** Reads an IPC file written by {@link #writeIpcFile}; the kind comes from the schema metadata. */
  public static ShardBatch<?> readIpcFile(Path in, BufferAllocator allocator) throws IOException {
    Objects.requireNonNull(allocator, "allocator");
    String source = "Arrow IPC file " + in;
    try (FileChannel channel = FileChannel.open(in, StandardOpenOption.READ)) {
      return readIpcFile(channel, allocator, source);
    }
  }

  private static ShardBatch<?> readIpcFile(FileChannel channel, BufferAllocator allocator, String source)
      throws IOException {
    try (ArrowFileReader footer = new ArrowFileReader(channel, allocator)) {
      Schema schema = footer.getVectorSchemaRoot().getSchema();
      String kind = schema.getCustomMetadata().get(KIND_KEY);
      if (!TENSOR_SHARD.equals(kind) && !QUANTIZED_SHARD.equals(kind)) {
        throw new IllegalArgumentException(source + " is not a shardquant shard: expected " + KIND_KEY + "="
            + TENSOR_SHARD + " or " + QUANTIZED_SHARD + ", found " + KIND_KEY + "=" + kind);
      }
      checkSchema(schema, kind, source);
      List<ArrowBlock> blocks = footer.getRecordBlocks();
      if (blocks.size() != 1) {
        throw new IllegalArgumentException(source + " holds " + blocks.size() + " record batches, expected 1");
      }
      channel.position(blocks.get(0).getOffset());
      VectorSchemaRoot root = loadBatch(new ReadChannel(channel), channel.size(), schema, allocator, source);
      return adopt(root, kind.equals(TENSOR_SHARD) ? ArrowShards::decodeTensorShard
          : ArrowShards::decodeQuantizedShard, source);
    } catch (RuntimeException e) {
      throw corrupt(source, e);
    } catch (IOException e) {
      throw new IOException(source + ": " + e.getMessage(), e);
    }
  }

  private static <T> ShardBatch<T> readStream(byte[] ipcStream, BufferAllocator allocator, String kind,
      Function<VectorSchemaRoot, T> decode) {
    Objects.requireNonNull(ipcStream, "ipcStream");
    Objects.requireNonNull(allocator, "allocator");
    String source = "Arrow IPC stream of " + ipcStream.length + " bytes";
    try (ReadChannel in = new ReadChannel(new ArrayReadChannel(ipcStream))) {
      MessageMetadataResult first = MessageSerializer.readMessage(in);
      if (first == null || first.headerType() != MessageHeader.Schema) {
        throw new IllegalArgumentException(source + " does not start with an Arrow schema message");
      }
      Schema schema = MessageSerializer.deserializeSchema(first);
      checkSchema(schema, kind, source);
      ShardBatch<T> batch = adopt(loadBatch(in, ipcStream.length, schema, allocator, source), decode, source);
      MessageMetadataResult extra;
      try {
        extra = MessageSerializer.readMessage(in);
      } catch (IOException | RuntimeException e) {
        batch.close();
        throw e;
      }
      if (extra != null) {
        batch.close();
        throw new IllegalArgumentException(source + " holds more than one record batch");
      }
      return batch;
    } catch (IOException | RuntimeException e) {
      throw corrupt(source, e);
    }
  }

  /**
   * Reads the next message, which must be a record batch, into a new root. The body is checked against
   * the input's size before it is allocated. Deserializing takes over the body but leaks it when a
   * corrupt batch fails (as Arrow's own readers then do), so it is released here on that path; a row
   * count that disagrees with a column's would likewise leak inside Arrow's loader, so it is refused.
   */
  private static VectorSchemaRoot loadBatch(ReadChannel in, long inputSize, Schema schema, BufferAllocator allocator,
      String source) throws IOException {
    MessageMetadataResult message = MessageSerializer.readMessage(in);
    if (message == null || message.headerType() != MessageHeader.RecordBatch) {
      throw new IllegalArgumentException(source + " holds " + (message == null ? "no Arrow message"
          : "an Arrow message of type " + MessageHeader.name(message.headerType())) + " where a record batch belongs");
    }
    long bodyLength = message.getMessageBodyLength();
    if (bodyLength < 0 || bodyLength > inputSize) {
      throw new IllegalArgumentException(source + " declares a record batch body of " + bodyLength
          + " bytes, but holds only " + inputSize);
    }
    ArrowBuf body = MessageSerializer.readMessageBody(in, bodyLength, allocator);
    ArrowRecordBatch batch;
    try {
      batch = MessageSerializer.deserializeRecordBatch(message, body);
    } catch (Throwable t) {
      body.close();
      throw t;
    }
    VectorSchemaRoot root = VectorSchemaRoot.create(schema, allocator);
    try (batch) {
      checkColumnLengths(schema, batch, source);
      new VectorLoader(root).load(batch);
      ValueVectorUtility.validateFull(root); // offsets in bounds before anything reads them
    } catch (Throwable t) {
      root.close();
      throw t;
    }
    return root;
  }

  /** Every column of a record batch has the batch's row count. */
  private static void checkColumnLengths(Schema schema, ArrowRecordBatch batch, String source) {
    List<ArrowFieldNode> nodes = batch.getNodes();
    int at = 0;
    for (Field f : schema.getFields()) {
      if (at >= nodes.size() || nodes.get(at).getLength() != batch.getLength()) {
        throw new IllegalArgumentException(source + ": column '" + f.getName() + "' does not have the batch's "
            + batch.getLength() + " rows");
      }
      at += nodeCount(f);
    }
  }

  /** How many field nodes an Arrow record batch has for {@code f}: one for it and one per descendant. */
  private static int nodeCount(Field f) {
    int n = 1;
    for (Field child : f.getChildren()) {
      n += nodeCount(child);
    }
    return n;
  }

  /** Our own errors pass unchanged; anything Arrow throws on bad bytes says which input was bad. */
  private static IllegalArgumentException corrupt(String source, Exception e) {
    if (e instanceof IllegalArgumentException && e.getMessage() != null && e.getMessage().startsWith(source)) {
      return (IllegalArgumentException) e;
    }
    return new IllegalArgumentException(source + " is not a readable shardquant shard: " + e, e);
  }

  /** Checks kind, version and columns, saying what was expected and what was found. */
  private static void checkSchema(Schema schema, String kind, String source) {
    Map<String, String> meta = schema.getCustomMetadata();
    String foundKind = meta.get(KIND_KEY);
    String foundVersion = meta.get(VERSION_KEY);
    if (!kind.equals(foundKind) || !String.valueOf(SCHEMA_VERSION).equals(foundVersion)) {
      throw new IllegalArgumentException(source + " is not a shardquant " + kind + " batch of schema version " + SCHEMA_VERSION
          + ": expected "
          + KIND_KEY + "=" + kind + " and " + VERSION_KEY + "=" + SCHEMA_VERSION + ", found " + KIND_KEY + "="
          + foundKind + " and " + VERSION_KEY + "=" + foundVersion);
    }
    List<Field> expected = (kind.equals(TENSOR_SHARD) ? tensorShardSchema() : quantizedShardSchema()).getFields();
    if (!columnsMatch(expected, schema.getFields())) {
      throw new IllegalArgumentException(source + " has the columns " + schema.getFields() + ", but a " + kind
          + " batch of version " + SCHEMA_VERSION + " has " + expected);
    }
  }

  /** Names and types, recursively; list item names differ between writers ("item", "$data$"). */
  private static boolean columnsMatch(List<Field> expected, List<Field> found) {
    if (expected.size() != found.size()) {
      return false;
    }
    for (int i = 0; i < expected.size(); i++) {
      Field e = expected.get(i);
      Field f = found.get(i);
      boolean topLevel = e.getName().equals("item") || e.getName().equals(f.getName());
      if (!topLevel || !e.getType().equals(f.getType()) || !columnsMatch(e.getChildren(), f.getChildren())) {
        return false;
      }
    }
    return true;
  }

  private static void putTensorShardHeader(VectorSchemaRoot root, String tensor, long[] tensorShape, long rowStart,
      long rowEnd, DType dtype, long[] shape) {
    Columns.allocate(root, 1, "data");
    Columns.putUtf8(root, "tensor", 0, tensor);
    Columns.putInt64s(root, "tensor_shape", 0, tensorShape);
    Columns.putInt64(root, "row_start", 0, rowStart);
    Columns.putInt64(root, "row_end", 0, rowEnd);
    Columns.putUtf8(root, "dtype", 0, dtype.safetensorsName());
    Columns.putInt64s(root, "shape", 0, shape);
  }

  private static TensorShard decodeTensorShard(VectorSchemaRoot root) {
    if (root.getRowCount() != 1) {
      throw new IllegalArgumentException("a tensor_shard batch has one row, got " + root.getRowCount());
    }
    return new TensorShard(Columns.utf8(root, "tensor", 0), Columns.int64s(root, "tensor_shape", 0),
        Columns.int64(root, "row_start", 0), Columns.int64(root, "row_end", 0), tensorView(root, 0));
  }

  private static QuantizedShard decodeQuantizedShard(VectorSchemaRoot root) {
    int rows = root.getRowCount();
    if (rows == 0) {
      throw new IllegalArgumentException("a quantized_shard batch has one row per part, got no rows");
    }
    String tensor = Columns.utf8(root, "tensor", 0);
    long rowStart = Columns.int64(root, "row_start", 0);
    long rowEnd = Columns.int64(root, "row_end", 0);
    List<ShardPart> parts = new ArrayList<>(rows);
    for (int i = 0; i < rows; i++) {
      String t = Columns.utf8(root, "tensor", i);
      long s = Columns.int64(root, "row_start", i);
      long e = Columns.int64(root, "row_end", i);
      if (!t.equals(tensor) || s != rowStart || e != rowEnd) {
        throw new IllegalArgumentException("a quantized_shard batch holds one shard, but row " + i + " is '" + t
            + "' rows [" + s + ", " + e + ") and row 0 is '" + tensor + "' rows [" + rowStart + ", " + rowEnd + ")");
      }
      parts.add(new ShardPart(Columns.utf8(root, "key", i), Columns.int32(root, "row_dim", i), tensorView(root, i)));
    }
    return new QuantizedShard(tensor, rowStart, rowEnd, parts);
  }

  private static Tensor tensorView(VectorSchemaRoot root, int row) {
    DType dtype = DType.fromSafetensors(Columns.utf8(root, "dtype", row));
    return Tensor.of(dtype, Columns.int64s(root, "shape", row), Columns.binaryView(root, "data", row));
  }

  /** Hands a filled root to a new ShardBatch, or closes it if it does not decode. */
  private static <T> ShardBatch<T> adopt(VectorSchemaRoot root, Function<VectorSchemaRoot, ? extends T> decode) {
    try {
      return new ShardBatch<>(root, decode.apply(root));
    } catch (RuntimeException | Error e) {
      root.close();
      throw e;
    }
  }

  /** Same, for a batch read from {@code source}: a batch that does not decode is reported as coming from it. */
  private static <T> ShardBatch<T> adopt(VectorSchemaRoot root, Function<VectorSchemaRoot, ? extends T> decode,
      String source) {
    try {
      return adopt(root, decode);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(source + " holds a bad shard: " + e.getMessage(), e);
    }
  }

  private static Field utf8(String name) {
    return Field.notNullable(name, ArrowType.Utf8.INSTANCE);
  }

  private static Field int64(String name) {
    return Field.notNullable(name, INT64);
  }

  private static Field int64s(String name) {
    return new Field(name, FieldType.notNullable(ArrowType.List.INSTANCE), List.of(Field.notNullable("item", INT64)));
  }

  private static Field binary(String name) {
    return Field.notNullable(name, ArrowType.LargeBinary.INSTANCE);
  }

  private static Map<String, String> metadata(String kind) {
    return Map.of(VERSION_KEY, String.valueOf(SCHEMA_VERSION), KIND_KEY, kind);
  }
}
