package shardquant.kernels.golden;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class Nf4KindTest {
  /** The golden cases live in shared/ beside the checkout (CI) or above the worktree. */
  static Path goldenDir() {
    for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
      Path dir = p.resolve("shared/golden/torchao-0.19");
      if (Files.isRegularFile(dir.resolve("index.json"))) {
        return dir;
      }
    }
    throw new AssertionError("no shared/golden/torchao-0.19/index.json above " + Path.of("").toAbsolutePath());
  }

  @Test
  void everyNf4CaseMatchesTorchao() throws IOException {
    ByteArrayOutputStream log = new ByteArrayOutputStream();
    GoldenRunner.Result result = GoldenRunner.run(goldenDir(), new PrintStream(log, true, StandardCharsets.UTF_8),
        "nf4"::equals);
    String out = log.toString(StandardCharsets.UTF_8);
    assertEquals(0, result.failed(), out);
    assertEquals(6, result.passed(), out);
    assertTrue(out.endsWith("golden: 6 passed, 0 failed" + System.lineSeparator()), out);
  }
}
