package shardquant.kernels.golden;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import shardquant.kernels.GoldenFiles;

/** Runs the golden cases of kinds affine and qat_fake_quant from shared/golden/torchao-0.19. */
class AffineGoldenTest {
  static final Path GOLDEN = GoldenFiles.dir("torchao-0.19");

  @Test
  void everyAffineCaseMatchesTorchaoBitForBit() throws IOException {
    assertAllPass("affine", 24);
  }

  @Test
  void everyQatFakeQuantCaseMatchesTorchaoBitForBit() throws IOException {
    assertAllPass("qat_fake_quant", 6);
  }

  static void assertAllPass(String kind, int expectedCases) throws IOException {
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    GoldenRunner.Result result;
    try (PrintStream out = new PrintStream(buf, true, StandardCharsets.UTF_8)) {
      result = GoldenRunner.run(GOLDEN, out, kind::equals);
    }
    String report = buf.toString(StandardCharsets.UTF_8);
    assertEquals(0, result.failed(), report);
    assertEquals(expectedCases, result.passed(), report);
  }
}
