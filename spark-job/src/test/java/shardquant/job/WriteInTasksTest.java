package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;

/**
 * The two ways a shard reaches its output file give the same files byte for byte: written by the
 * quantize task itself (local mode, local output: the default here) and carried through Spark's shuffle
 * to the file's assembler ({@code spark.shardquant.writeInTasks=false}, what a cluster does), for
 * quantized, copied and many-shard tensors over several files, and with a retried assembly.
 */
class WriteInTasksTest {
  static final String[] SIZES = {"--shard-bytes", "65536", "--output-file-bytes", "1000000"};

  @TempDir
  Path tmp;

  static String[] args(String recipe, String... extra) {
    List<String> a = new ArrayList<>(List.of("--recipe", recipe));
    a.addAll(List.of(SIZES));
    a.addAll(List.of(extra));
    return a.toArray(new String[0]);
  }

  static void assertSameFiles(Path a, Path b) throws IOException {
    assertEquals(JobTestSupport.listing(a), JobTestSupport.listing(b));
    assertEquals(JobTestSupport.storedTensors(a), JobTestSupport.storedTensors(b));
    for (Path f : JobTestSupport.modelFiles(a)) {
      assertEquals(-1L, Files.mismatch(f, b.resolve(f.getFileName())), f.getFileName().toString());
    }
    assertEquals(Files.readString(a.resolve("model.safetensors.index.json")),
        Files.readString(b.resolve("model.safetensors.index.json")));
  }

  @Test
  void tasksWriteTheBytesTheShuffleDelivers() throws IOException {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    for (String recipe : List.of("8da4w", "nf4")) {
      Path inTasks = tmp.resolve(recipe + "-tasks");
      Path shuffled = tmp.resolve(recipe + "-shuffle");
      Run a = JobTestSupport.quantize(input, inTasks, args(recipe));
      assertEquals(0, a.status(), a::toString);
      Run b = JobTestSupport.quantize(input, shuffled, args(recipe, "--conf", QuantizeJob.WRITE_IN_TASKS_CONF + "=false"));
      assertEquals(0, b.status(), b::toString);
      List<String> files = JobTestSupport.listing(inTasks);
      assertTrue(JobTestSupport.modelFiles(inTasks).size() >= 2, files::toString);
      assertSameFiles(shuffled, inTasks);
    }
  }

  @Test
  void aRetriedAssemblyFindsTheTasksFile() throws IOException {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Path reference = tmp.resolve("reference");
    Run ref = JobTestSupport.quantize(input, reference, args("8da4w", "--conf", QuantizeJob.WRITE_IN_TASKS_CONF + "=false"));
    assertEquals(0, ref.status(), ref::toString);
    String first = JobTestSupport.modelFiles(reference).get(0).getFileName().toString();
    Path out = tmp.resolve("out");
    Run r = JobTestSupport.quantize(input, out, args("8da4w", "--conf", "spark.shardquant.test.failAssemblyOf=" + first));
    assertEquals(0, r.status(), r::toString);
    assertTrue(r.err().contains("retried: 1 failed task attempt"), r::toString);
    assertSameFiles(reference, out);
  }
}
