package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.scheduler.SparkListenerApplicationEnd;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.cli.SyntheticCheckpoint;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.plan.InputCheckpoint;
import shardquant.plan.JobSpec;
import shardquant.plan.Plan;
import shardquant.plan.Planner;

/** The job's progress in both console modes, driven through the task ends Spark would report. */
class ProgressTest {
  @TempDir Path dir;

  private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
  private final PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
  private Plan plan;
  private int[] files;
  private int[][] groups;

  @BeforeEach
  void plan() throws IOException {
    SyntheticCheckpoint.write(dir, new SyntheticCheckpoint.Shape(2, 256, 256, 4, 1, 512), 1, 1, null);
    plan = Planner.plan(InputCheckpoint.read(dir.toString(), new Configuration()),
        new JobSpec(QuantConfig.of(Recipe.INT8_WEIGHT_ONLY), null, null, 64 << 10, 256 << 10));
    files = plan.files().stream().mapToInt(f -> f.index()).toArray();
    groups = QuantizeJob.groupsFor(plan, files);
    assertTrue(groups.length > 3 && files.length > 1, groups.length + " groups, " + files.length + " files");
  }

  @Test
  void elsewhereEveryUpdateIsALineOfItsOwn() {
    runAll(new Progress(plan, groups, files, "quantize", new StatusLine(out, false, 80), 0));
    String text = bytes.toString(StandardCharsets.UTF_8);
    assertFalse(text.contains("\r"), text);
    List<String> lines = text.lines().toList();
    assertEquals(groups.length + files.length, lines.size(), text);
    assertTrue(lines.stream().allMatch(l -> l.startsWith("quantize: ") && l.contains(" left")), text);
    assertLast(lines.get(lines.size() - 1));
  }

  @Test
  void onATerminalOneLineIsRedrawnAndEndsWithTheJob() {
    runAll(new Progress(plan, groups, files, "quantize", new StatusLine(out, true, 200), 0));
    String text = bytes.toString(StandardCharsets.UTF_8);
    assertEquals(groups.length + files.length, text.chars().filter(c -> c == '\r').count(), text);
    assertEquals(1, text.chars().filter(c -> c == '\n').count(), "one line, ended once: " + text);
    assertTrue(text.endsWith(System.lineSeparator()), text);
    String[] updates = text.strip().split("\r");
    assertLast(updates[updates.length - 1].strip());
  }

  /** A job that fails half way still leaves the console on a new line for the error that follows. */
  @Test
  void onATerminalTheEndOfAFailedJobEndsTheLine() {
    Progress p = new Progress(plan, groups, files, "quantize", new StatusLine(out, true, 200), 0);
    p.quantized(0);
    assertFalse(bytes.toString(StandardCharsets.UTF_8).contains("\n"));
    p.onApplicationEnd(new SparkListenerApplicationEnd(0L, scala.Option.empty()));
    String text = bytes.toString(StandardCharsets.UTF_8);
    assertTrue(text.startsWith("\rquantize: ") && text.endsWith(System.lineSeparator()), text);
  }

  private void runAll(Progress p) {
    for (int g = 0; g < groups.length; g++) {
      p.quantized(g);
    }
    for (int f = 0; f < files.length; f++) {
      p.assembled();
    }
    p.onApplicationEnd(new SparkListenerApplicationEnd(0L, scala.Option.empty()));
  }

  private void assertLast(String line) {
    long tensors = plan.tensors().size();
    assertTrue(line.startsWith("quantize: " + tensors + "/" + tensors + " tensors, ") && line.endsWith(
        "0:00 left, files " + files.length + "/" + files.length), line);
  }
}
