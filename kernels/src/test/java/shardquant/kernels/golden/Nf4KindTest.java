package shardquant.kernels.golden;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import shardquant.kernels.GoldenFiles;

class Nf4KindTest {
  @Test
  void everyNf4CaseMatchesTorchao() throws IOException {
    ByteArrayOutputStream log = new ByteArrayOutputStream();
    GoldenRunner.Result result = GoldenRunner.run(GoldenFiles.dir("torchao-0.19"), new PrintStream(log, true, StandardCharsets.UTF_8),
        "nf4"::equals);
    String out = log.toString(StandardCharsets.UTF_8);
    assertEquals(0, result.failed(), out);
    assertEquals(6, result.passed(), out);
    assertTrue(out.endsWith("golden: 6 passed, 0 failed" + System.lineSeparator()), out);
  }
}
