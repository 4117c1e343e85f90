package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import shardquant.JobTestSupport;

/**
 * Two output directories hold the same checkpoint: the same model files, byte for byte (headers carry
 * no timings, so the same job writes the same bytes wherever and whenever it runs), and the same
 * weight_map.
 */
final class SameOutput {
  private SameOutput() {}

  static void assertSame(Path expected, Path actual) throws IOException {
    List<Path> files = JobTestSupport.modelFiles(expected);
    assertFalse(files.isEmpty(), () -> "no model files in " + expected);
    assertEquals(files.stream().map(p -> p.getFileName().toString()).toList(),
        JobTestSupport.modelFiles(actual).stream().map(p -> p.getFileName().toString()).toList());
    for (Path f : files) {
      assertSameFile(f, actual.resolve(f.getFileName()));
    }
    assertEquals(weightMap(expected), weightMap(actual));
  }

  static void assertSameFile(Path expected, Path actual) throws IOException {
    assertEquals(-1L, Files.mismatch(expected, actual), () -> actual + " differs from " + expected);
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
