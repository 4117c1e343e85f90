package shardquant.kernels.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * Reads a safetensors file: an 8-byte little-endian header length, a JSON header, then the data
 * section (https://github.com/huggingface/safetensors, "Format"). Opening reads and validates only the
 * header; tensor bytes are memory-mapped on demand, one tensor or one row range at a time, so files
 * over 2 GiB work and nothing is read that is not asked for.
 *
 * <p>Validation is the Rust reference's ({@code safetensors/src/tensor.rs}, {@code validate}): the
 * header is a JSON object, dtype names are known, each shape's byte size equals its offset range,
 * offsets lie in the file, and the tensors cover the data section exactly, with no overlap and no gap.
 */
public final class SafetensorsFile implements AutoCloseable {
  /** The reference implementation refuses headers over 100 MB; so do we, before allocating. */
  public static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

  private static final ObjectMapper JSON = new ObjectMapper()
      .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

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
    long fileSize = channel.size();
    if (fileSize < 8) {
      throw new SafetensorsFormatException(path, null, "file is " + fileSize
          + " bytes, too short for the 8-byte header length (truncated or not a safetensors file)");
    }
    ByteBuffer lengthBytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
    readFully(channel, lengthBytes, 0);
    long headerLength = lengthBytes.getLong(0);
    if (headerLength < 2 || headerLength > MAX_HEADER_BYTES) {
      throw new SafetensorsFormatException(path, null, "header length " + Long.toUnsignedString(headerLength)
          + " is not between 2 and " + MAX_HEADER_BYTES + " bytes (corrupt or not a safetensors file)");
    }
    if (8 + headerLength > fileSize) {
      throw new SafetensorsFormatException(path, null, "header length " + headerLength
          + " runs past the end of the " + fileSize + "-byte file (truncated)");
    }
    ByteBuffer headerBytes = ByteBuffer.allocate((int) headerLength);
    readFully(channel, headerBytes, 8);
    String headerText = new String(headerBytes.array(), StandardCharsets.UTF_8);
    JsonNode header;
    try {
      header = JSON.readTree(headerText);
    } catch (JsonProcessingException e) {
      throw new SafetensorsFormatException(path, null, "header is not valid JSON: " + e.getOriginalMessage()
          + " (at header byte " + e.getLocation().getCharOffset() + ")");
    }
    if (header == null || !header.isObject()) {
      throw new SafetensorsFormatException(path, null, "header is not a JSON object");
    }
    long dataStart = 8 + headerLength;
    long dataLength = fileSize - dataStart;
    Map<String, String> metadata = new LinkedHashMap<>();
    Map<String, TensorEntry> entries = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> field = it.next();
      if (field.getKey().equals("__metadata__")) {
        readMetadata(path, field.getValue(), metadata);
      } else {
        TensorEntry e = parseEntry(path, field.getKey(), field.getValue(), dataLength);
        entries.put(e.name(), e);
      }
    }
    checkCoverage(path, entries, dataLength);
    return new SafetensorsFile(path, channel, dataStart, Collections.unmodifiableMap(entries),
        Collections.unmodifiableMap(metadata));
  }

  private static void readMetadata(Path path, JsonNode node, Map<String, String> into)
      throws SafetensorsFormatException {
    if (!node.isObject()) {
      throw new SafetensorsFormatException(path, null, "__metadata__ is not a JSON object of strings");
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> m = it.next();
      if (!m.getValue().isTextual()) {
        throw new SafetensorsFormatException(path, null, "__metadata__ value of '" + m.getKey() + "' is not a string");
      }
      into.put(m.getKey(), m.getValue().textValue());
    }
  }

  private static TensorEntry parseEntry(Path path, String name, JsonNode node, long dataLength)
      throws SafetensorsFormatException {
    if (!node.isObject()) {
      throw new SafetensorsFormatException(path, name, "header entry is not a JSON object");
    }
    JsonNode dtypeNode = node.get("dtype");
    if (dtypeNode == null || !dtypeNode.isTextual()) {
      throw new SafetensorsFormatException(path, name, "missing or non-string 'dtype'");
    }
    DType dtype = DType.fromSafetensorsOrNull(dtypeNode.textValue());
    if (dtype == null) {
      throw new SafetensorsFormatException(path, name, "unknown dtype '" + dtypeNode.textValue()
          + "' (shardquant reads F32, BF16, F16, I8, U8, I16, I32, I64, BOOL)");
    }
    JsonNode shapeNode = node.get("shape");
    if (shapeNode == null || !shapeNode.isArray()) {
      throw new SafetensorsFormatException(path, name, "missing or non-array 'shape'");
    }
    long[] shape = new long[shapeNode.size()];
    for (int i = 0; i < shape.length; i++) {
      JsonNode d = shapeNode.get(i);
      if (!d.canConvertToLong() || !d.isIntegralNumber() || d.longValue() < 0) {
        throw new SafetensorsFormatException(path, name, "shape " + shapeNode + " has a dimension that is not a non-negative integer");
      }
      shape[i] = d.longValue();
    }
    JsonNode offsets = node.get("data_offsets");
    if (offsets == null || !offsets.isArray() || offsets.size() != 2 || !offsets.get(0).isIntegralNumber()
        || !offsets.get(1).isIntegralNumber()) {
      throw new SafetensorsFormatException(path, name, "'data_offsets' is not a pair of integers");
    }
    long begin = offsets.get(0).longValue();
    long end = offsets.get(1).longValue();
    if (begin < 0 || end < begin) {
      throw new SafetensorsFormatException(path, name, "data_offsets [" + begin + ", " + end + "] are not an increasing range");
    }
    if (end > dataLength) {
      throw new SafetensorsFormatException(path, name, "data_offsets [" + begin + ", " + end
          + "] run past the end of the data section (" + dataLength + " bytes; file truncated?)");
    }
    long numel;
    try {
      numel = Tensor.numel(shape);
      long expected = Math.multiplyExact(numel, dtype.byteSize());
      if (expected != end - begin) {
        throw new SafetensorsFormatException(path, name, "shape " + shapeNode + " of " + dtype.safetensorsName()
            + " needs " + expected + " bytes but data_offsets [" + begin + ", " + end + "] hold " + (end - begin));
      }
    } catch (ArithmeticException e) {
      throw new SafetensorsFormatException(path, name, "shape " + shapeNode + " overflows a 64-bit byte count");
    }
    return new TensorEntry(name, dtype, shape, begin, end);
  }

  private static void checkCoverage(Path path, Map<String, TensorEntry> entries, long dataLength)
      throws SafetensorsFormatException {
    List<TensorEntry> byOffset = new ArrayList<>(entries.values());
    byOffset.sort(Comparator.comparingLong(TensorEntry::begin).thenComparingLong(TensorEntry::end));
    long covered = 0;
    TensorEntry previous = null;
    for (TensorEntry e : byOffset) {
      if (e.begin() < covered) {
        throw new SafetensorsFormatException(path, e.name(), "data_offsets [" + e.begin() + ", " + e.end()
            + "] overlap tensor '" + previous.name() + "' [" + previous.begin() + ", " + previous.end() + "]");
      }
      if (e.begin() > covered) {
        throw new SafetensorsFormatException(path, e.name(), "gap of " + (e.begin() - covered)
            + " unindexed bytes before data_offsets [" + e.begin() + ", " + e.end() + "] (at data byte " + covered + ")");
      }
      covered = e.end();
      previous = e;
    }
    if (covered != dataLength) {
      throw new SafetensorsFormatException(path, null, "data section is " + dataLength + " bytes but tensors cover "
          + covered + ": " + (dataLength - covered) + " trailing bytes belong to no tensor");
    }
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
