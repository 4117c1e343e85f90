package shardquant.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.common.TensorReport;
import shardquant.kernels.safetensors.SafetensorsWriter;

/**
 * One output safetensors file: its name, its stored tensors in order, and its {@code __metadata__}:
 * torchao's per-tensor JSON and {@code tensor_names}, {@code format: pt} for Hugging Face loaders,
 * and a {@code shardquant} entry saying which job wrote it (for reruns) and how each tensor came out.
 *
 * <p>Every stored tensor's CRC-32C (hex, 8 digits) is recorded too, under {@code checksums}, so a
 * reader can check the bytes against what was written ({@code shardquant verify} does).
 *
 * <p>The header is sized before the stats exist: {@link #headerBytes} reserves room for the widest
 * stats, and the real header is padded with spaces to that length (JSON allows trailing whitespace,
 * and so does the safetensors format), so the data section's place never moves.
 */
public record OutputFile(int index, String name, List<Integer> tensors, List<SafetensorsWriter.Declared> declared,
    Map<String, String> metadata, String jobId, String planHash, int headerBytes) implements Serializable {
  public static final String SHARDQUANT_KEY = "shardquant";
  private static final ObjectMapper JSON = new ObjectMapper();

  /** Total size of the file: 8 + header + data. */
  public long size() {
    return 8L + headerBytes + declared.stream().mapToLong(SafetensorsWriter.Declared::byteSize).sum();
  }

  public long dataStart() {
    return 8L + headerBytes;
  }

  /**
   * The header for these stats (one per quantized tensor of the file) and checksums (one per stored
   * tensor, {@link #checksum}), exactly {@link #headerBytes} long.
   */
  public byte[] header(Map<String, TensorReport> stats, Map<String, Integer> crc32c) {
    ObjectNode st = JSON.createObjectNode();
    stats.forEach((name, r) -> st.set(name, r.toJson()));
    ObjectNode sums = JSON.createObjectNode();
    for (SafetensorsWriter.Declared d : declared) {
      Integer c = crc32c.get(d.name());
      if (c == null) {
        throw new IllegalStateException(name + ": no checksum for " + d.name());
      }
      sums.put(d.name(), checksum(c));
    }
    byte[] h = build(declared, metadata, jobId, planHash, st, sums, name);
    if (h.length > headerBytes) {
      throw new IllegalStateException(name + ": header of " + h.length + " bytes exceeds the reserved " + headerBytes);
    }
    byte[] out = Arrays.copyOf(h, headerBytes);
    Arrays.fill(out, h.length, headerBytes, (byte) ' ');
    return out;
  }

  /** Sizes the header for {@code quantized} tensors' stats. */
  static int reserve(List<SafetensorsWriter.Declared> declared, Map<String, String> metadata, String jobId,
      String planHash, List<String> quantized, String name) {
    ObjectNode st = JSON.createObjectNode();
    for (String t : quantized) {
      st.set(t, TensorReport.placeholderJson());
    }
    ObjectNode sums = JSON.createObjectNode();
    declared.forEach(d -> sums.put(d.name(), checksum(0)));
    return build(declared, metadata, jobId, planHash, st, sums, name).length;
  }

  /** How a CRC-32C is written in the header: 8 hex digits. */
  public static String checksum(int crc32c) {
    return String.format("%08x", crc32c);
  }

  private static byte[] build(List<SafetensorsWriter.Declared> declared, Map<String, String> metadata, String jobId,
      String planHash, ObjectNode stats, ObjectNode checksums, String name) {
    Map<String, String> all = new LinkedHashMap<>(metadata);
    ObjectNode sq = JSON.createObjectNode();
    sq.put("job", jobId);
    sq.put("file", planHash);
    sq.set("stats", stats);
    sq.set("checksums", checksums);
    all.put(SHARDQUANT_KEY, sq.toString());
    try {
      return SafetensorsWriter.header(name, declared, all);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The job id and plan hash a file's header says it was written for, or null if it is not one of ours. */
  public static String[] writtenBy(Map<String, String> fileMetadata) {
    String sq = fileMetadata.get(SHARDQUANT_KEY);
    if (sq == null) {
      return null;
    }
    try {
      JsonNode n = JSON.readTree(sq);
      return new String[] {n.path("job").asText(null), n.path("file").asText(null)};
    } catch (IOException e) {
      return null;
    }
  }

  /** The CRC-32C of each stored tensor a committed file records (stored key -> 8 hex digits); empty if none. */
  public static Map<String, String> checksumsIn(Map<String, String> fileMetadata) throws IOException {
    Map<String, String> out = new LinkedHashMap<>();
    String sq = fileMetadata.get(SHARDQUANT_KEY);
    if (sq != null) {
      JSON.readTree(sq).path("checksums").fields().forEachRemaining(e -> out.put(e.getKey(), e.getValue().asText()));
    }
    return out;
  }

  /** The per-tensor stats a committed file carries. */
  public static List<TensorReport> statsIn(Map<String, String> fileMetadata) throws IOException {
    List<TensorReport> out = new ArrayList<>();
    JsonNode stats = JSON.readTree(fileMetadata.get(SHARDQUANT_KEY)).path("stats");
    stats.fields().forEachRemaining(e -> out.add(TensorReport.fromJson(e.getKey(), e.getValue())));
    return out;
  }
}
