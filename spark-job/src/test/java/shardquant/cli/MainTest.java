package shardquant.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MainTest {
  @TempDir Path dir;

  private final ByteArrayOutputStream out = new ByteArrayOutputStream();
  private final ByteArrayOutputStream err = new ByteArrayOutputStream();

  private int run(String... args) {
    return Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
  }

  @Test
  void goldenPassesOnTorchaoVectorsAndEndsWithTheSummaryLine() {
    Path golden = null;
    for (Path p = Path.of("").toAbsolutePath(); p != null && golden == null; p = p.getParent()) {
      Path candidate = p.resolve("shared/golden/torchao-0.19");
      golden = Files.isDirectory(candidate) ? candidate : null;
    }
    assertTrue(golden != null, "shared/golden/torchao-0.19 must be beside the checkout");
    int code = run("golden", golden.toString());
    String stdout = out.toString(StandardCharsets.UTF_8);
    assertEquals(0, code, stdout);
    assertTrue(stdout.endsWith("golden: 40 passed, 0 failed\n"), stdout);
  }

  @Test
  void goldenExitsThreeWhenACaseFails() throws IOException {
    Files.writeString(dir.resolve("index.json"), "{\"cases\": [{\"file\": \"gone.safetensors\", \"kind\": \"affine\"}]}");
    assertEquals(Main.VERIFY_FAILED, run("golden", dir.toString()));
    String stdout = out.toString(StandardCharsets.UTF_8);
    assertTrue(stdout.contains("FAIL gone.safetensors [affine]"), stdout);
    assertTrue(stdout.endsWith("golden: 0 passed, 1 failed\n"), stdout);
  }

  @Test
  void badArgumentsGiveOneLineAndExitTwo() {
    assertEquals(Main.BAD_INPUT, run("golden", dir.resolve("nowhere").toString()));
    assertTrue(err.toString(StandardCharsets.UTF_8).contains("is not a directory"));
    err.reset();
    assertEquals(Main.BAD_INPUT, run("golden", dir.toString()));
    assertTrue(err.toString(StandardCharsets.UTF_8).contains("index.json"), err.toString(StandardCharsets.UTF_8));
    err.reset();
    assertEquals(Main.BAD_INPUT, run("frobnicate"));
    assertTrue(err.toString(StandardCharsets.UTF_8).startsWith("shardquant: unknown command 'frobnicate'"));
    assertEquals(Main.BAD_INPUT, run());
    assertEquals(Main.OK, run("--help"));
  }

  @org.junit.jupiter.api.Test
  void errorsStayOneLineWhateverTheNamesHold() {
    org.junit.jupiter.api.Assertions.assertEquals("tensor 'a\\nb\\u0000c\\r' is bad",
        Main.oneLine("tensor 'a\nb\u0000c\r' is bad"));
  }
}
