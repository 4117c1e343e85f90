package shardquant.kernels.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
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
 * <p>Validation is the Rust reference's ({@code safetensors/src/tensor.rs}, {@code read_metadata} and
 * {@code validate}), which is what the Python package and transformers load with: the header is UTF-8
 * ({@code str::from_utf8}) holding one JSON object and nothing after it but JSON whitespace
 * ({@code serde_json::from_str}), dtype names are known, offsets are integers that fit 64 bits, each
 * shape's byte size equals its offset range, offsets lie in the file, and the tensors cover the data
 * section exactly, with no overlap and no gap. Duplicate keys, which the reference lets the last one win,
 * are refused.
 */
public record SafetensorsHeader(String file, long fileSize, long dataStart, Map<String, TensorEntry> entries,
    Map<String, String> metadata) {
  /** The reference implementation refuses headers over 100 MB ({@code MAX_HEADER_SIZE}); so do we, before allocating. */
  public static final long MAX_HEADER_BYTES = 100_000_000;

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
    byte[] text = headerBytes.array();
    checkText(path, text);
    JsonNode header;
    long jsonEnd;
    try (JsonParser parser = JSON.getFactory().createParser(text)) {
      header = JSON.readTree(parser);
      jsonEnd = parser.currentLocation().getByteOffset();
    } catch (JsonProcessingException e) {
      throw new SafetensorsFormatException(path, null, "header is not valid JSON: " + e.getOriginalMessage()
          + " (at header byte " + e.getLocation().getByteOffset() + ")");
    }
    if (header == null || !header.isObject()) {
      throw new SafetensorsFormatException(path, null, "header is not a JSON object");
    }
    checkPadding(path, text, Math.toIntExact(jsonEnd));
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

  /**
   * UTF-8 as {@code str::from_utf8} takes it (no replacement of bad bytes), with no NUL byte (JSON has no
   * place for one, so a NUL is a sign of a broken writer) and no byte order mark (which serde_json
   * refuses and Jackson would skip).
   */
  private static void checkText(String path, byte[] text) throws SafetensorsFormatException {
    for (int i = 0; i < text.length; i++) {
      if (text[i] == 0) {
        throw new SafetensorsFormatException(path, null, "header byte " + i + " is a NUL byte (0x00); a header is JSON"
            + " text padded with spaces (written by a broken writer?)");
      }
    }
    CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
        .onUnmappableCharacter(CodingErrorAction.REPORT);
    ByteBuffer in = ByteBuffer.wrap(text);
    CharBuffer scratch = CharBuffer.allocate(8192); // only the verdict is kept: Jackson parses the bytes
    CoderResult r;
    do {
      scratch.clear();
      r = utf8.decode(in, scratch, true);
    } while (r.isOverflow());
    if (r.isError()) {
      throw new SafetensorsFormatException(path, null, "header is not valid UTF-8: byte 0x"
          + String.format("%02x", text[in.position()] & 0xFF) + " at header byte " + in.position()
          + " does not start or continue a character (the file is corrupt or its names were written in another encoding)");
    }
    if (text.length >= 3 && (text[0] & 0xFF) == 0xEF && (text[1] & 0xFF) == 0xBB && (text[2] & 0xFF) == 0xBF) {
      throw new SafetensorsFormatException(path, null, "header starts with a UTF-8 byte order mark, which the"
          + " safetensors reference refuses; the header must start with the JSON object");
    }
  }

  /** After the JSON object, only the padding {@code serde_json::from_str} skips: space, tab, CR, LF. */
  private static void checkPadding(String path, byte[] text, int jsonEnd) throws SafetensorsFormatException {
    for (int i = jsonEnd; i < text.length; i++) {
      byte b = text[i];
      if (b != ' ' && b != '\t' && b != '\n' && b != '\r') {
        throw new SafetensorsFormatException(path, null, (text.length - i) + " bytes after the header's JSON object,"
            + " from header byte " + i + " (0x" + String.format("%02x", b & 0xFF) + "), are not whitespace padding"
            + " (corrupt file, or the header length " + text.length + " is wrong)");
      }
    }
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
    // As exact integers: longValue() would wrap 2^64 + 8 to 8.
    BigInteger first = offsets.get(0).bigIntegerValue();
    BigInteger last = offsets.get(1).bigIntegerValue();
    String range = "data_offsets [" + first + ", " + last + "]";
    if (first.signum() < 0 || last.compareTo(first) < 0) {
      throw new SafetensorsFormatException(path, name, range + " are not an increasing range of non-negative integers");
    }
    if (last.compareTo(BigInteger.valueOf(dataLength)) > 0) {
      throw new SafetensorsFormatException(path, name, range + " run past the end of the data section (" + dataLength
          + " bytes; file truncated?)");
    }
    long begin = first.longValueExact();
    long end = last.longValueExact();
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
