package shardquant.kernels.golden;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Predicate;
import shardquant.kernels.safetensors.SafetensorsFile;

/**
 * Checks every case of a golden directory ({@code DIR/index.json} and its safetensors files) against
 * shardquant's own code. Prints one line per failing case (tensor and first differing index), one
 * summary line per kind, and last {@code golden: N passed, M failed}.
 */
public final class GoldenRunner {
  /** Every kind shardquant can check; a case of any other kind fails as unknown. */
  static final List<GoldenKind> KINDS =
      List.of(new TinygemmInt4Kind(), new AffineKind(), new Nf4Kind(), new QatFakeQuantKind());

  /** Tensors a case gives as inputs rather than expects as outputs (golden README). */
  private static final Set<String> INPUTS = Set.of("w", "x", "grad_out");

  /** Pass and fail counts. */
  public record Result(int passed, int failed) {}

  private GoldenRunner() {}

  public static Result run(Path dir, PrintStream out) throws IOException {
    return run(dir, out, kind -> true);
  }

  /** Runs the cases whose kind {@code selected} accepts. */
  public static Result run(Path dir, PrintStream out, Predicate<String> selected) throws IOException {
    return run(dir, out, selected, KINDS);
  }

  static Result run(Path dir, PrintStream out, Predicate<String> selected, List<GoldenKind> kinds) throws IOException {
    Path index = dir.resolve("index.json");
    if (!Files.isRegularFile(index)) {
      throw new IOException(index + ": no golden index here (expected DIR/index.json listing the cases)");
    }
    JsonNode root = new ObjectMapper().readTree(index.toFile());
    JsonNode cases = root.path("cases");
    if (!cases.isArray()) {
      throw new IOException(index + ": no 'cases' array");
    }
    Map<String, int[]> perKind = new LinkedHashMap<>();
    int passed = 0;
    int failed = 0;
    for (JsonNode c : cases) {
      String kind = c.path("kind").asText("?");
      if (!selected.test(kind)) {
        continue;
      }
      List<String> failures = runCase(dir, c, kinds);
      int[] counts = perKind.computeIfAbsent(kind, k -> new int[2]);
      if (failures.isEmpty()) {
        passed++;
        counts[0]++;
      } else {
        failed++;
        counts[1]++;
        out.println("FAIL " + c.path("file").asText("?") + " [" + kind + "]: " + String.join("; ", failures));
      }
    }
    perKind.forEach((kind, n) -> out.println(kind + ": " + n[0] + " passed, " + n[1] + " failed"));
    out.println("golden: " + passed + " passed, " + failed + " failed");
    return new Result(passed, failed);
  }

  private static List<String> runCase(Path dir, JsonNode c, List<GoldenKind> kinds) {
    String kind = c.path("kind").asText("?");
    GoldenKind checker = kinds.stream().filter(k -> k.kind().equals(kind)).findFirst().orElse(null);
    if (checker == null) {
      Set<String> known = new TreeSet<>();
      kinds.forEach(k -> known.add(k.kind()));
      return List.of("no checker for kind '" + kind + "' (this shardquant checks " + known + ")");
    }
    Path file = dir.resolve(c.path("file").asText(""));
    try (SafetensorsFile st = SafetensorsFile.open(file)) {
      GoldenCase golden = new GoldenCase(c, st);
      GoldenReport report = new GoldenReport(golden);
      checker.check(golden, report);
      for (String name : golden.tensorNames()) {
        if (!INPUTS.contains(name) && !checker.notChecked().contains(name) && !report.compared().contains(name)) {
          report.fail(name + ": expected but never compared");
        }
      }
      return report.failures();
    } catch (IOException | RuntimeException e) {
      return List.of(e.getClass().getSimpleName() + ": " + e.getMessage());
    }
  }
}
