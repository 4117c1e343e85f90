package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import shardquant.JobTestSupport;

/**
 * Two output directories hold the same checkpoint: the same model files and the same weight_map.
 * "The same file" is byte for byte but for one thing: each quantized tensor's {@code quantize_ms} in the
 * {@code shardquant} header metadata is wall time measured on the executor, so it differs between any
 * two runs (the header is padded to the size the plan reserved, so its length and every tensor byte
 * still match exactly).
 */
final class SameOutput {
  /** The measured time inside the header's escaped JSON: {@code quantize_ms\":\"647.44}. */
  private static final Pattern TIMING = Pattern.compile("quantize_ms\\\\\":\\\\\"[0-9.]*");

  private SameOutput() {}

  static void assertSame(Path expected, Path actual) throws IOException {
    List<Path> files = JobTestSupport.modelFiles(expected);
    assertFalse(files.isEmpty(), () -> "no model files in " + expected);
    assertEquals(files.stream().map(p -> p.getFileName().toString()).toList(),
        JobTestSupport.modelFiles(actual).stream().map(p -> p.getFileName().toString()).toList());
    for (Path f : files) {
      Path other = actual.resolve(f.getFileName());
      assertSameFile(f, other);
    }
    assertEquals(weightMap(expected), weightMap(actual));
  }

  /** The same safetensors file, byte for byte except the measured {@code quantize_ms} values. */
  static void assertSameFile(Path expected, Path actual) throws IOException {
    byte[] a = Files.readAllBytes(expected);
    byte[] b = Files.readAllBytes(actual);
    String name = actual.getFileName().toString();
    assertEquals(a.length, b.length, () -> name + ": size");
    long headerLength = ByteBuffer.wrap(a, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    assertEquals(headerLength, ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong(), () -> name + ": header size");
    int dataStart = Math.toIntExact(8 + headerLength);
    assertEquals(-1, Arrays.mismatch(a, dataStart, a.length, b, dataStart, b.length), () -> name + ": tensor bytes differ");
    String ha = new String(a, 8, dataStart - 8, StandardCharsets.UTF_8);
    String hb = new String(b, 8, dataStart - 8, StandardCharsets.UTF_8);
    assertTrue(TIMING.matcher(ha).find(), () -> name + ": no quantize_ms in the header (is the mask still needed?)\n" + ha);
    assertEquals(TIMING.matcher(ha).replaceAll("quantize_ms").strip(), TIMING.matcher(hb).replaceAll("quantize_ms").strip(),
        () -> name + ": header differs beyond quantize_ms");
  }

  /** {@code weight_map} of the directory's {@code model.safetensors.index.json}: stored key -> file. */
  static Map<String, String> weightMap(Path dir) throws IOException {
    JsonNode map = new ObjectMapper().readTree(dir.resolve("model.safetensors.index.json").toFile()).get("weight_map");
    Map<String, String> out = new TreeMap<>();
    map.fields().forEachRemaining(e -> out.put(e.getKey(), e.getValue().asText()));
    assertFalse(out.isEmpty(), () -> "empty weight_map in " + dir);
    return out;
  }
}
