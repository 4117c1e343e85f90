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
    PrintStream out = new PrintStream(log, true, StandardCharsets.UTF_8);
    GoldenRunner.Result result = GoldenRunner.run(GoldenFiles.dir("torchao-0.19"), out, "nf4"::equals);
    String printed = log.toString(StandardCharsets.UTF_8);
    assertEquals(0, result.failed(), printed);
    assertEquals(6, result.passed(), printed);
    assertTrue(printed.endsWith("golden: 6 passed, 0 failed" + System.lineSeparator()), printed);
  }
}
