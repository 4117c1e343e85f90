package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.loader.Checkpoint;
import shardquant.kernels.loader.TensorInfo;

/**
 * The bar for {@code shardquant repack}: the golden input quantized with int4-tile-packed, repacked
 * to cpu or plain and back, gives the original stored tensors; the cpu form equals quantizing with
 * int4-cpu; the bytes do not depend on shards or files; bad input is refused with one line.
 */
class RepackJobTest {
  @TempDir
  static Path tmp;
  static Path input;
  static Path tilePacked;

  @BeforeAll
  static void quantize() {
    input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    tilePacked = tmp.resolve("tile-packed");
    Run r = JobTestSupport.quantize(input, tilePacked, "--recipe", "int4-tile-packed");
    assertEquals(0, r.status(), r::toString);
  }

  static Run repack(Path in, Path out, String layout, String... args) {
    List<String> all = new ArrayList<>(List.of("repack", "--input", in.toString(), "--output", out.toString(), "--layout",
        layout));
    all.addAll(List.of(args));
    all.addAll(List.of(JobTestSupport.LOCAL));
    return JobTestSupport.cli(all.toArray(new String[0]));
  }

  static Path repacked(Path in, String name, String layout, String... args) {
    Path out = tmp.resolve(name);
    Run r = repack(in, out, layout, args);
    assertEquals(0, r.status(), r::toString);
    assertTrue(Files.exists(out.resolve("_SUCCESS")), r::toString);
    return out;
  }

  @Test
  void tilePackedToCpuAndBackGivesTheOriginalBytesAndCpuIsTheInt4CpuRecipe() throws IOException {
    Path cpu = repacked(tilePacked, "cpu", "cpu");
    Path back = repacked(cpu, "cpu-back", "tile-packed");
    Map<String, String> original = JobTestSupport.storedTensors(tilePacked);
    assertEquals(original, JobTestSupport.storedTensors(back));
    assertEquals(JobTestSupport.metadata(tilePacked).get("tensor_names"), JobTestSupport.metadata(back).get("tensor_names"));

    Path quantizedCpu = tmp.resolve("quantized-cpu");
    Run q = JobTestSupport.quantize(input, quantizedCpu, "--recipe", "int4-cpu");
    assertEquals(0, q.status(), q::toString);
    assertEquals(JobTestSupport.storedTensors(quantizedCpu), JobTestSupport.storedTensors(cpu));
    assertNotEquals(original, JobTestSupport.storedTensors(cpu));

    // verify re-quantizes with the index's recipe: the repacked output must pass as that recipe's
    for (Path out : List.of(cpu, back)) {
      Run v = JobTestSupport.cli("verify", "--input", input.toString(), "--output", out.toString());
      assertEquals(0, v.status(), v::toString);
      assertTrue(v.out().contains("0 mismatches"), v::toString);
    }
    String report = Files.readString(cpu.resolve("quantization_report.json"));
    assertTrue(report.contains("\"backend\" : \"repack\""), report);
  }

  @Test
  void tilePackedToPlainAndBackGivesTheOriginalBytes() throws IOException {
    Path plain = repacked(tilePacked, "plain", "plain");
    Path back = repacked(plain, "plain-back", "tile-packed");
    assertEquals(JobTestSupport.storedTensors(tilePacked), JobTestSupport.storedTensors(back));

    // The loader reads the plain form: same layout, group size and values as the tile-packed tensors.
    try (Checkpoint p = Checkpoint.open(plain); Checkpoint t = Checkpoint.open(tilePacked)) {
      int int4 = 0;
      for (TensorInfo info : p.tensors()) {
        if (info.quantized()) {
          assertEquals(Int4Layout.PLAIN, info.layout(), info::toString);
          assertEquals(t.tensor(info.name()).config().groupSize(), info.int4GroupSize());
          assertTrue(p.dequantize(info.name(), DType.F32).contentEquals(t.dequantize(info.name(), DType.F32)), info::toString);
          int4++;
        }
      }
      assertTrue(int4 > 0);
    }
    Run v = JobTestSupport.cli("verify", "--input", input.toString(), "--output", plain.toString());
    assertEquals(0, v.status(), v::toString);
    assertTrue(v.out().contains("round trip") && v.out().contains("0 mismatches"), v::toString);
    Run i = JobTestSupport.cli("inspect", plain.toString());
    assertEquals(0, i.status(), i::toString);
    assertTrue(i.out().contains("int4 plain layout"), i::toString);
  }

  @Test
  void manyShardsAndFilesGiveTheSameBytesAsOneShardPerTensor() throws IOException {
    String[] many = {"--shard-bytes", "65536", "--output-file-bytes", "1000000"};
    for (String layout : List.of("cpu", "plain")) {
      Path one = repacked(tilePacked, "one-" + layout, layout, "--shard-bytes", "1g");
      Path split = repacked(tilePacked, "many-" + layout, layout, many);
      assertTrue(JobTestSupport.modelFiles(split).size() > 1, JobTestSupport.modelFiles(split)::toString);
      assertEquals(JobTestSupport.storedTensors(one), JobTestSupport.storedTensors(split), layout);
      Path back = repacked(split, "many-back-" + layout, "tile-packed", many);
      assertEquals(JobTestSupport.storedTensors(tilePacked), JobTestSupport.storedTensors(back), layout);
    }
  }

  @Test
  void aRerunKeepsTheCommittedFilesAndAnotherLayoutIsAnotherJob() throws IOException {
    Path out = repacked(tilePacked, "rerun", "cpu");
    Run again = repack(tilePacked, out, "cpu");
    assertEquals(0, again.status(), again::toString);
    assertTrue(again.out().contains("1 kept from an earlier run"), again::toString);
    Run other = repack(tilePacked, out, "plain");
    assertEquals(2, other.status(), other::toString);
    assertTrue(other.err().contains("another shardquant job"), other::toString);
  }

  @Test
  void aCheckpointThatIsNotInt4IsRefusedInOneLine() throws IOException {
    Path intx = tmp.resolve("8da4w");
    Run q = JobTestSupport.quantize(input, intx, "--recipe", "8da4w");
    assertEquals(0, q.status(), q::toString);
    Path out = tmp.resolve("from-8da4w");
    Run r = repack(intx, out, "cpu");
    assertEquals(2, r.status(), r::toString);
    assertEquals(1, r.err().strip().lines().count(), r::toString);
    assertTrue(r.err().contains("8da4w") && r.err().contains("tensor '") && r.err().contains(".safetensors"), r::toString);
    assertFalse(Files.exists(out.resolve("_SUCCESS")));
    assertTrue(!Files.exists(out) || JobTestSupport.listing(out).isEmpty(), () -> out.toString());
  }

  @Test
  void anUnknownLayoutIsRefused() {
    Run r = repack(tilePacked, tmp.resolve("unknown"), "tiled");
    assertEquals(2, r.status(), r::toString);
    assertEquals(1, r.err().strip().lines().count(), r::toString);
    assertTrue(r.err().contains("unknown layout 'tiled'") && r.err().contains("tile-packed"), r::toString);
    assertFalse(Files.exists(tmp.resolve("unknown")));
  }

  @Test
  void repackingIntoTheInputDirectoryIsRefused() throws IOException {
    Map<String, String> before = JobTestSupport.storedTensors(tilePacked);
    List<String> listing = JobTestSupport.listing(tilePacked);
    Run r = repack(tilePacked, tilePacked, "cpu");
    assertEquals(2, r.status(), r::toString);
    assertTrue(r.err().contains("is the input checkpoint"), r::toString);
    assertEquals(listing, JobTestSupport.listing(tilePacked));
    assertEquals(before, JobTestSupport.storedTensors(tilePacked));
  }
}
