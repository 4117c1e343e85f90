package shardquant.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.TorchEnv;

/**
 * {@code shardquant golden} passes on cases that torchao 0.19 makes live (tools/golden_one_group.py, in the
 * environment of shared/tools/torch-env.sh) whose rows hold exactly one group, K equal to the group size,
 * for every group size and every golden kind: tinygemm int4 with scale and zero [N, 1] (and the CPU packing
 * on an AVX-512 machine), affine, QAT fake quantization and NF4. The public golden set has no such case.
 * The seed, and with it the row counts, changes every run; both are printed.
 */
class GoldenOneGroupTest {
  @TempDir Path dir;

  @Test
  void goldenPassesOnTorchaosOwnRowsOfOneGroup() throws IOException {
    long seed = ThreadLocalRandom.current().nextLong(1, 1L << 31);
    System.out.println("GoldenOneGroupTest: seed " + seed);
    TorchEnv.Result made = TorchEnv.run("golden_one_group.py", List.of(dir.toString(), Long.toString(seed)), 300);
    System.out.println(made.output());
    assertEquals(0, made.status(), made::output);
    assertTrue(made.output().contains("wrote 26 cases"), made::output);

    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code = Main.run(new String[] {"golden", dir.toString()}, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    String stdout = out.toString(StandardCharsets.UTF_8);
    String what = "seed " + seed + ":\n" + stdout + err.toString(StandardCharsets.UTF_8);
    assertEquals(Main.OK, code, what);
    for (String kind : List.of("tinygemm_int4: 8", "affine: 8", "qat_fake_quant: 8", "nf4: 2")) {
      assertTrue(stdout.contains(kind + " passed, 0 failed"), what);
    }
    assertTrue(stdout.endsWith("golden: 26 passed, 0 failed\n"), what);
  }
}
