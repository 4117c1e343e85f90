package shardquant.kernels.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * The validated header of a safetensors file: where its data section starts, its tensors in header
 * order and its metadata. Reading it touches only the first 8 + header-length bytes, through any
 * positioned reader (a local channel, a Hadoop stream), so a planner can read headers of remote files.
 *
 * <p>Validation is the Rust reference's ({@code safetensors/src/tensor.rs}, {@code validate}): the
 * header is a JSON object, dtype names are known, each shape's byte size equals its offset range,
 * offsets lie in the file, and the tensors cover the data section exactly, with no overlap and no gap.
 */
public record SafetensorsHeader(String file, long fileSize, long dataStart, Map<String, TensorEntry> entries,
    Map<String, String> metadata) {
  /** The reference implementation refuses headers over 100 MB; so do we, before allocating. */
  public static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

  private static final ObjectMapper JSON = new ObjectMapper()
      .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

  /** Reads {@code into.remaining()} bytes at {@code position}, or throws. */
  public interface PositionedReader {
    void readFully(long position, ByteBuffer into) throws IOException;
  }

  /** The tensor's bytes lie at [dataStart + begin, dataStart + end) of the file. */
  public TensorEntry entry(String name) throws SafetensorsFormatException {
    TensorEntry e = entries.get(name);
    if (e == null) {
      throw new SafetensorsFormatException(file, name, "no such tensor in this file");
    }
    return e;
  }

  /** Reads and validates the header of {@code path} ({@code fileSize} bytes long). */
  public static SafetensorsHeader read(String path, long fileSize, PositionedReader reader) throws IOException {
    if (fileSize < 8) {
      throw new SafetensorsFormatException(path, null, "file is " + fileSize
          + " bytes, too short for the 8-byte header length (truncated or not a safetensors file)");
    }
    ByteBuffer lengthBytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
    reader.readFully(0, lengthBytes);
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
    reader.readFully(8, headerBytes);
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
    return new SafetensorsHeader(path, fileSize, dataStart, Collections.unmodifiableMap(entries),
        Collections.unmodifiableMap(metadata));
  }

  private static void readMetadata(String path, JsonNode node, Map<String, String> into)
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

  private static TensorEntry parseEntry(String path, String name, JsonNode node, long dataLength)
      throws SafetensorsFormatException {
    if (!node.isObject()) {
      throw new SafetensorsFormatException(path, name, "header entry is not a JSON object");
    }
    JsonNode dtypeNode = node.get("dtype");
    if (dtypeNode == null || !dtypeNode.isTextual()) {
      throw new SafetensorsFormatException(path, name, "missing or non-string 'dtype'");
    }
    DType dtype = DType.fromSafetensorsOrNull(dtypeNode.textValue());
    if (dtype == null && DType.SUB_BYTE.contains(dtypeNode.textValue())) {
      throw new SafetensorsFormatException(path, name, "dtype " + dtypeNode.textValue() + " packs elements narrower"
          + " than a byte, and shardquant reads and copies whole-byte dtypes only, so it cannot take this file");
    }
    if (dtype == null) {
      throw new SafetensorsFormatException(path, name, "unknown dtype '" + dtypeNode.textValue() + "' (shardquant reads "
          + knownDtypes() + ")");
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

  private static String knownDtypes() {
    return Arrays.stream(DType.values()).map(DType::safetensorsName).collect(Collectors.joining(", "));
  }

  private static void checkCoverage(String path, Map<String, TensorEntry> entries, long dataLength)
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
}
