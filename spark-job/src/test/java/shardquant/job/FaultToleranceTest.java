package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;

/**
 * DESIGN.md, step 4 and "nothing is lost": a task that fails is retried by Spark with no trace in the
 * output; a rerun into the same directory keeps what the same job committed, redoes only what is
 * missing, removes a killed run's temporary files, and refuses a directory holding anything else.
 *
 * <p>One reference run (the golden input, 8da4w, many shards over several files) is shared; most
 * rerun cases start from a copy of it, so only the cases that must run Spark do.
 */
class FaultToleranceTest {
  static final String RECIPE = "8da4w";
  static final String[] SIZES = {"--shard-bytes", "65536", "--output-file-bytes", "1000000"};
  static final String GATE = "model.layers.0.mlp.gate_proj.weight";

  @TempDir
  static Path shared;
  static Path input;
  static Path reference;
  static Map<String, String> referenceTensors;
  static List<String> referenceFiles;

  @TempDir
  Path tmp;

  @BeforeAll
  static void referenceRun() throws IOException {
    input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    reference = shared.resolve("reference");
    Run r = JobTestSupport.quantize(input, reference, args());
    assertEquals(0, r.status(), r::toString);
    referenceTensors = JobTestSupport.storedTensors(reference);
    referenceFiles = JobTestSupport.modelFiles(reference).stream().map(p -> p.getFileName().toString()).toList();
    assertTrue(referenceFiles.size() >= 3, referenceFiles::toString);
    assertEquals(committed(referenceFiles), JobTestSupport.listing(reference));
  }

  // ---- helpers ---------------------------------------------------------------------------------

  static String[] args(String... extra) {
    List<String> a = new ArrayList<>(List.of("--recipe", RECIPE));
    a.addAll(List.of(SIZES));
    a.addAll(List.of(extra));
    return a.toArray(new String[0]);
  }

  /** Exactly what a committed output directory holds. */
  static List<String> committed(List<String> modelFiles) {
    List<String> all = new ArrayList<>(modelFiles);
    all.addAll(List.of("_SUCCESS", "model.safetensors.index.json", "quantization_report.json"));
    return all.stream().sorted().toList();
  }

  /** A committed copy of the reference output, as a finished earlier run would have left it. */
  Path copyOfReference() throws IOException {
    Path dir = Files.createDirectory(tmp.resolve("out"));
    try (Stream<Path> s = Files.list(reference)) {
      for (Path p : s.toList()) {
        Files.copy(p, dir.resolve(p.getFileName()));
      }
    }
    return dir;
  }

  static Map<String, FileTime> modelFileTimes(Path dir) throws IOException {
    Map<String, FileTime> out = new LinkedHashMap<>();
    for (Path p : JobTestSupport.modelFiles(dir)) {
      out.put(p.getFileName().toString(), Files.getLastModifiedTime(p));
    }
    return out;
  }

  /**
   * The directory holds the reference output and nothing else (no hidden files), byte for byte: the
   * same job writes the same bytes whichever run writes them (headers carry no timings).
   */
  static void assertSameAsReference(Path dir) throws IOException {
    assertEquals(committed(referenceFiles), JobTestSupport.listing(dir));
    assertEquals(referenceTensors, JobTestSupport.storedTensors(dir));
    for (String f : referenceFiles) {
      assertEquals(-1L, Files.mismatch(reference.resolve(f), dir.resolve(f)), f);
    }
    assertEquals(Files.readString(reference.resolve("model.safetensors.index.json")),
        Files.readString(dir.resolve("model.safetensors.index.json")));
  }

  /** These files of {@code dir} are byte for byte the reference's: kept by the rerun, not rewritten. */
  static void assertKept(Path dir, List<String> files) throws IOException {
    for (String f : files) {
      assertEquals(-1L, Files.mismatch(reference.resolve(f), dir.resolve(f)), f + " should be kept as it was");
    }
  }

  static int stderrLines(Run r) {
    return (int) r.err().lines().filter(l -> !l.isBlank()).count();
  }

  /** The job with Spark's retries off ({@code local[2]}: a failed task fails the job). */
  static Run withoutRetries(Path output, String... extra) {
    List<String> a = new ArrayList<>(List.of("quantize", "--input", input.toString(), "--output", output.toString()));
    a.addAll(List.of(args(extra)));
    a.addAll(List.of("--master", "local[2]", "--conf", "spark.driver.host=127.0.0.1", "--conf",
        "spark.driver.bindAddress=127.0.0.1", "--conf", "spark.ui.enabled=false"));
    return JobTestSupport.cli(a.toArray(new String[0]));
  }

  // ---- failed tasks --------------------------------------------------------------------------

  @Test
  void failedQuantizeTaskIsRetriedWithNoTrace() throws IOException {
    Path out = tmp.resolve("out");
    Run r = JobTestSupport.quantize(input, out, args("--conf", "spark.shardquant.test.failShardOf=" + GATE));
    assertEquals(0, r.status(), r::toString);
    assertTrue(r.err().matches("(?s).*retried: \\d+ failed task attempts? \\(first: java.lang.IllegalStateException: injected"
        + " failure halfway through a shard of " + GATE.replace(".", "\\.") + " .*"),
        () -> "the failure must really have been injected and retried:\n" + r);
    assertSameAsReference(out);
  }

  /** The hook above really fails a task: without retries the job fails, and claims nothing. */
  @Test
  void failShardHookFailsTheJobWithoutRetries() throws IOException {
    Path out = tmp.resolve("out");
    Run r = withoutRetries(out, "--conf", "spark.shardquant.test.failShardOf=" + GATE);
    assertEquals(1, r.status(), r::toString);
    assertTrue(r.err().contains("injected failure") && r.err().contains(GATE), r::toString);
    assertEquals(1, r.err().lines().filter(l -> !l.isBlank() && !l.startsWith("plan: ") && !l.startsWith("quantize: "))
        .count(), () -> "one line besides the plan and progress:\n" + r);
    assertFalse(r.err().lines().anyMatch(l -> l.strip().startsWith("at ")), r::toString);
    assertEquals(List.of(), JobTestSupport.listing(out), "a failed quantize stage writes no file");
  }

  @Test
  void failedAssemblyTaskIsRetriedWithNoTrace() throws IOException {
    Path out = tmp.resolve("out");
    Run r = JobTestSupport.quantize(input, out, args("--conf", "spark.shardquant.test.failAssemblyOf=" + referenceFiles.get(0)));
    assertEquals(0, r.status(), r::toString);
    assertTrue(r.err().contains("retried: 1 failed task attempt (first: java.lang.IllegalStateException: injected failure"
        + " in the assembly of " + referenceFiles.get(0)), () -> "the failure must really have been injected and retried:\n" + r);
    assertSameAsReference(out);
  }

  /** Without retries the failed assembly fails the job: no success marker, no index, no temporary file. */
  @Test
  void failAssemblyHookFailsTheJobWithoutRetries() throws IOException {
    Path out = tmp.resolve("out");
    Run r = withoutRetries(out, "--conf", "spark.shardquant.test.failAssemblyOf=" + referenceFiles.get(0));
    assertEquals(1, r.status(), r::toString);
    assertTrue(r.err().contains("injected failure"), r::toString);
    List<String> left = JobTestSupport.listing(out);
    assertFalse(left.contains(referenceFiles.get(0)), left::toString);
    assertTrue(left.stream().noneMatch(n -> n.startsWith(".") || n.equals("_SUCCESS")
        || n.equals("model.safetensors.index.json")), left::toString);

    // What the other tasks committed is the same job's: the rerun keeps it and builds the one file left.
    int kept = left.size();
    Run again = JobTestSupport.quantize(input, out, args());
    assertEquals(0, again.status(), again::toString);
    if (kept > 0) {
      assertTrue(again.err().contains("(" + kept + " already committed by an earlier run: kept)"), again::toString);
    }
    assertSameAsReference(out);
  }

  // ---- reruns --------------------------------------------------------------------------------

  @Test
  void rerunOfACommittedJobKeepsEveryFile() throws IOException {
    Path out = copyOfReference();
    Map<String, FileTime> before = modelFileTimes(out);
    Run r = JobTestSupport.quantize(input, out, args());
    assertEquals(0, r.status(), r::toString);
    assertTrue(r.err().contains("(" + referenceFiles.size() + " already committed by an earlier run: kept)"),
        r::toString);
    assertTrue(r.out().contains("0 written, " + referenceFiles.size() + " kept"), r::toString);
    assertEquals(before, modelFileTimes(out), "kept files are not rewritten");
    assertSameAsReference(out);
    assertKept(out, referenceFiles);
  }

  @Test
  void rerunWithAnotherRecipeIsRefusedAndTouchesNothing() throws IOException {
    Path out = copyOfReference();
    Map<String, FileTime> before = modelFileTimes(out);
    Run r = JobTestSupport.quantize(input, out, "--recipe", "int8-weight-only");
    assertEquals(2, r.status(), r::toString);
    assertEquals(1, stderrLines(r), r::toString);
    assertTrue(r.err().contains("another shardquant job") && r.err().contains(out.toString()), r::toString);
    assertEquals(before, modelFileTimes(out));
    assertSameAsReference(out);
    assertKept(out, referenceFiles);
  }

  @Test
  void directoryWithAStrayUserFileIsRefused() throws IOException {
    Path out = Files.createDirectory(tmp.resolve("out"));
    Files.writeString(out.resolve("notes.txt"), "do not delete\n");
    Run r = JobTestSupport.quantize(input, out, args());
    assertEquals(2, r.status(), r::toString);
    assertEquals(1, stderrLines(r), r::toString);
    assertTrue(r.err().contains("notes.txt"), r::toString);
    assertEquals(List.of("notes.txt"), JobTestSupport.listing(out));
    assertEquals("do not delete\n", Files.readString(out.resolve("notes.txt")));
  }

  @Test
  void directoryWithAnotherToolsIndexIsRefused() throws IOException {
    Path out = Files.createDirectory(tmp.resolve("out"));
    String index = "{\"metadata\": {\"total_size\": 4}, \"weight_map\": {\"a\": \"model.safetensors\"}}";
    Files.writeString(out.resolve("model.safetensors.index.json"), index);
    Run r = JobTestSupport.quantize(input, out, args());
    assertEquals(2, r.status(), r::toString);
    assertEquals(1, stderrLines(r), r::toString);
    assertTrue(r.err().contains("model.safetensors.index.json") && r.err().contains("did not write"), r::toString);
    assertEquals(index, Files.readString(out.resolve("model.safetensors.index.json")));
  }

  @Test
  void rerunRedoesOnlyTheMissingFile() throws IOException {
    Path out = copyOfReference();
    String gone = referenceFiles.get(1);
    Files.delete(out.resolve(gone));
    Files.delete(out.resolve("_SUCCESS"));
    Map<String, FileTime> before = modelFileTimes(out);
    Run r = JobTestSupport.quantize(input, out, args());
    assertEquals(0, r.status(), r::toString);
    int kept = referenceFiles.size() - 1;
    assertTrue(r.err().contains("(" + kept + " already committed by an earlier run: kept)"), r::toString);
    assertTrue(r.out().contains("1 written, " + kept + " kept"), r::toString);
    Map<String, FileTime> after = modelFileTimes(out);
    before.forEach((f, t) -> assertEquals(t, after.get(f), f + " is kept, not rewritten"));
    assertSameAsReference(out);
    assertKept(out, referenceFiles.stream().filter(f -> !f.equals(gone)).toList());
  }

  /**
   * The file layout is not part of the job's identity (the bytes do not depend on it): a rerun with
   * another --output-file-bytes is the same job, and replaces the old layout's files instead of
   * leaving them beside the new ones for a loader to find.
   */
  @Test
  void rerunWithAnotherFileSizeReplacesTheOldLayout() throws IOException {
    Path out = copyOfReference();
    Run r = JobTestSupport.quantize(input, out, "--recipe", RECIPE, "--output-file-bytes", "100m");
    assertEquals(0, r.status(), r::toString);
    assertEquals(committed(List.of("model-00001-of-00001.safetensors")), JobTestSupport.listing(out));
    assertEquals(referenceTensors, JobTestSupport.storedTensors(out));
  }

  @Test
  void staleTemporaryFilesOfAKilledRunAreRemoved() throws IOException {
    Path out = copyOfReference();
    String first = referenceFiles.get(0);
    // Killed while assembling the first file: it never got renamed into place, nothing was committed.
    Files.delete(out.resolve(first));
    Files.delete(out.resolve("_SUCCESS"));
    Files.delete(out.resolve("model.safetensors.index.json"));
    Files.delete(out.resolve("quantization_report.json"));
    Files.write(out.resolve("." + first + ".tmp-x"), new byte[] {1, 2, 3, 4, 5});
    Files.write(out.resolve(".quantization_report.json.tmp-1234"), new byte[] {'{'});
    Run r = JobTestSupport.quantize(input, out, args());
    assertEquals(0, r.status(), r::toString);
    assertSameAsReference(out);
  }

  /** Hidden temporary files are removed even when every model file is kept and no Spark job runs. */
  @Test
  void staleTemporaryFilesAreRemovedWhenNothingIsRebuilt() throws IOException {
    Path out = copyOfReference();
    Files.write(out.resolve("." + referenceFiles.get(0) + ".tmp-7-0-0"), new byte[] {1, 2, 3});
    Run r = JobTestSupport.quantize(input, out, args());
    assertEquals(0, r.status(), r::toString);
    assertSameAsReference(out);
    assertKept(out, referenceFiles);
  }

  /**
   * The input's fingerprint (file names, sizes, modification times, headers) is part of the job's
   * identity: after the input is rewritten, the earlier output is another job's and is refused,
   * not silently kept or mixed with new files.
   */
  @Test
  void rerunAfterTheInputChangedIsRefused() throws IOException {
    Path in = BadInputTest.write(tmp.resolve("model.safetensors"), BadInputTest.model(1));
    Path out = tmp.resolve("out");
    Run first = JobTestSupport.quantize(in, out, "--recipe", RECIPE);
    assertEquals(0, first.status(), first::toString);
    Map<String, String> firstTensors = JobTestSupport.storedTensors(out);
    List<String> firstListing = JobTestSupport.listing(out);

    long size = Files.size(in);
    BadInputTest.write(in, BadInputTest.model(2));
    assertEquals(size, Files.size(in), "same shapes, same size");
    Run again = JobTestSupport.quantize(in, out, "--recipe", RECIPE);
    assertEquals(2, again.status(), again::toString);
    assertEquals(1, stderrLines(again), again::toString);
    assertTrue(again.err().contains("another shardquant job") && again.err().contains("input files changed"),
        again::toString);
    assertEquals(firstListing, JobTestSupport.listing(out));
    assertEquals(firstTensors, JobTestSupport.storedTensors(out));
    assertArrayEquals(new byte[0], Files.readAllBytes(out.resolve("_SUCCESS")));
  }
}
