package shardquant.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.kernels.select.Backends;
import shardquant.kernels.quant.Recipe;

/** The bench's lines, as scripts and the README read them. Timings are not asserted: only the format and that numbers are sane. */
class BenchTest {
  private static final String NUMBER = "([0-9]+(?:\\.[0-9]+)?)";

  @Test
  void kernelLinesNameTheBackendThatRanAndCompareWithMemcpyAndOneThread() {
    Run r = JobTestSupport.cli("bench", "--small", "--recipe", "8da4w", "--backend", "cpu", "--threads", "2");
    assertEquals(0, r.status(), r::toString);
    String ran = Backends.cpu().nameFor(Recipe.INT8_DYN_ACT_INT4_WEIGHT);
    List<String> lines = r.out().lines().toList();
    assertEquals(2, lines.stream().filter(l -> l.startsWith("bench ")).count(), r::toString);
    assertTrue(lines.stream().allMatch(l -> l.startsWith("bench ") || l.startsWith("note: ")), r::toString);

    Matcher one = match("bench 8da4w " + Pattern.quote(ran) + ": " + NUMBER + " GB/s input, " + NUMBER + " of memcpy", lines.get(0));
    positive(one.group(1));
    positive(one.group(2));
    Matcher two = match("bench 8da4w " + Pattern.quote(ran) + " x2: " + NUMBER + " GB/s input, " + NUMBER + "x one thread",
        lines.get(1));
    positive(two.group(1));
    positive(two.group(2));
  }

  @Test
  void jobLineComparesWithCpAndLeavesNoTemporaryFiles() throws IOException {
    Set<Path> before = benchDirs();
    Run r = JobTestSupport.cli("bench", "job", "--small", "--bytes", "20m");
    assertEquals(0, r.status(), r::toString);
    List<String> lines = r.out().lines().filter(l -> l.startsWith("bench ")).toList();
    assertEquals(1, lines.size(), r::toString);
    Matcher m = match("bench job local: " + NUMBER + " GB/s, " + NUMBER + " of cp", lines.get(0));
    positive(m.group(1));
    positive(m.group(2));
    String phases = r.out().lines().filter(l -> l.startsWith("note: of the job's")).findFirst().orElseThrow(() -> new AssertionError(r.toString()));
    Matcher p = match("note: of the job's " + NUMBER + " s: setup " + NUMBER
        + " s \\(backend self-check, headers, plan, output directory\\), Spark's start " + NUMBER + " s, stages "
        + NUMBER + " s \\(of which the first wave of quantize tasks ran " + NUMBER + " s .*\\), commit " + NUMBER
        + " s; without the fixed costs \\(setup, start, commit\\) the job ran at " + NUMBER + " of cp", phases);
    double job = Double.parseDouble(p.group(1));
    double sum = 0;
    positive(p.group(3)); // Spark's start
    positive(p.group(4)); // the stages
    for (int g : new int[] {2, 3, 4, 6}) {
      sum += Double.parseDouble(p.group(g));
    }
    assertTrue(sum <= job + 0.02 && sum >= job - 0.5,
        "setup + start + stages + commit (" + sum + " s) is the job's " + job + " s: " + phases);
    positive(p.group(7));
    String cpu = r.out().lines().filter(l -> l.startsWith("note: the job took")).findFirst().orElseThrow(() -> new AssertionError(r.toString()));
    positive(match("note: the job took " + NUMBER + " s of CPU time \\(all its threads, user and system; " + NUMBER
        + " cores busy on average\\)", cpu).group(1));
    assertEquals(before, benchDirs(), "bench job removes its temporary directories");
  }

  @Test
  void badArgumentsAreOneLineWithTheValue() {
    Run threads = JobTestSupport.cli("bench", "--small", "--threads", "0");
    assertEquals(2, threads.status(), threads::toString);
    assertEquals("shardquant bench: --threads must be at least 1, got 0", threads.err().strip());
    Run recipe = JobTestSupport.cli("bench", "--recipe", "int3");
    assertEquals(2, recipe.status(), recipe::toString);
    assertTrue(recipe.err().contains("unknown recipe 'int3'"), recipe::toString);
  }

  private static Matcher match(String regex, String line) {
    Matcher m = Pattern.compile(regex).matcher(line);
    assertTrue(m.matches(), () -> "'" + line + "' does not match " + regex);
    return m;
  }

  private static void positive(String number) {
    double v = Double.parseDouble(number);
    assertTrue(Double.isFinite(v) && v > 0, number);
  }

  private static Set<Path> benchDirs() throws IOException {
    try (Stream<Path> s = Files.list(Path.of(System.getProperty("java.io.tmpdir")))) {
      return s.filter(p -> p.getFileName().toString().startsWith("shardquant-bench-")).collect(Collectors.toSet());
    }
  }
}
