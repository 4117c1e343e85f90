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
import shardquant.job.TensorReport;
import shardquant.kernels.safetensors.SafetensorsWriter;

/**
 * One output safetensors file: its name, its stored tensors in order, and its {@code __metadata__}:
 * torchao's per-tensor JSON and {@code tensor_names}, {@code format: pt} for Hugging Face loaders,
 * and a {@code shardquant} entry saying which job wrote it (for reruns) and how each tensor came out.
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

  /** The header for these stats (one per quantized tensor of the file), exactly {@link #headerBytes} long. */
  public byte[] header(Map<String, TensorReport> stats) {
    ObjectNode st = JSON.createObjectNode();
    stats.forEach((name, r) -> st.set(name, r.toJson()));
    byte[] h = build(declared, metadata, jobId, planHash, st, name);
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
    return build(declared, metadata, jobId, planHash, st, name).length;
  }

  private static byte[] build(List<SafetensorsWriter.Declared> declared, Map<String, String> metadata, String jobId,
      String planHash, ObjectNode stats, String name) {
    Map<String, String> all = new LinkedHashMap<>(metadata);
    ObjectNode sq = JSON.createObjectNode();
    sq.put("job", jobId);
    sq.put("file", planHash);
    sq.set("stats", stats);
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

  /** The per-tensor stats a committed file carries. */
  public static List<TensorReport> statsIn(Map<String, String> fileMetadata) throws IOException {
    List<TensorReport> out = new ArrayList<>();
    JsonNode stats = JSON.readTree(fileMetadata.get(SHARDQUANT_KEY)).path("stats");
    stats.fields().forEachRemaining(e -> out.add(TensorReport.fromJson(e.getKey(), e.getValue())));
    return out;
  }
}
