package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.commit.OutputDir;
import shardquant.kernels.backend.cuda.CudaBackend;
import shardquant.kernels.backend.cuda.EmulatedCudaDevice;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.select.Backends;

/**
 * Whole jobs on the CUDA backend, without a GPU: the CUDA emulator is installed as this JVM's device 0
 * (local-mode executors share the JVM), and each recipe with a CUDA kernel is quantized with
 * {@code --backend cuda} in many small shards on concurrent tasks. Every recipe must pass the backend's
 * self-check; the output must equal the CPU backend's byte for byte, every tensor's report must name
 * cuda, and every shard must have run on the device.
 */
class CudaJobTest {
  private static EmulatedCudaDevice device;
  private static CudaBackend cuda;

  @BeforeAll
  static void installEmulator() {
    device = new EmulatedCudaDevice();
    cuda = Backends.installCuda(0, device);
  }

  @AfterAll
  static void uninstall() {
    Backends.uninstallCuda(0);
    device.close();
  }

  static List<String> recipes() {
    return java.util.Arrays.stream(Recipe.values()).map(Recipe::cliName).toList();
  }

  @ParameterizedTest
  @MethodSource("recipes")
  void cudaWritesTheCpuBytes(String recipe, @TempDir Path tmp) throws Exception {
    Recipe r = Recipe.fromCliName(recipe);
    // The self-check moves a recipe to the CPU exactly when its kernel is wrong: a failure, not a skip.
    String selfCheck = cuda.selfCheckFailures().get(r);
    assertNull(selfCheck, () -> recipe + " failed the CUDA backend's self-check and would run on the CPU: " + selfCheck);
    assertNull(cuda.failure(), "the emulated GPU failed");
    assumeTrue(cuda.nameFor(r).equals("cuda"), recipe + " has no CUDA kernel");
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    long launches = device.launches();
    long cpuAnswers = cuda.cpuAnswers();
    long[] resident = cuda.residentCounts();
    long uploaded = device.uploadedBytes();
    Run gpu = JobTestSupport.quantize(input, tmp.resolve("cuda"), "--recipe", recipe, "--backend", "cuda",
        "--shard-bytes", "65536");
    assertEquals(0, gpu.status(), gpu::toString);
    Run cpu = JobTestSupport.quantize(input, tmp.resolve("cpu"), "--recipe", recipe, "--backend", "cpu");
    assertEquals(0, cpu.status(), cpu::toString);
    assertEquals(JobTestSupport.storedTensors(tmp.resolve("cpu")), JobTestSupport.storedTensors(tmp.resolve("cuda")), recipe);
    assertTrue(device.launches() > launches, "no kernel ran");
    assertNull(cuda.failure(), "the emulated GPU failed during the job");
    assertEquals(cpuAnswers, cuda.cpuAnswers(), "shards of the job went to the CPU");
    if (r == Recipe.NF4) { // one GPU: each first pass keeps its shard, its second pass takes it (no upload)
      long[] now = cuda.residentCounts();
      long kept = now[0] - resident[0];
      long taken = now[1] - resident[1];
      long bytes = device.uploadedBytes() - uploaded;
      String counts = kept + " shards kept, " + taken + " taken, " + now[2] + " left; " + bytes + " bytes uploaded for a "
          + java.nio.file.Files.size(input) + "-byte file";
      assertTrue(kept > 0, counts);
      assertEquals(kept, taken, counts);
      assertEquals(0, now[2], counts);
      assertTrue(bytes < java.nio.file.Files.size(input) * 5 / 4, "each shard uploaded once: " + counts);
    }
    JsonNode report = new ObjectMapper().readTree(tmp.resolve("cuda").resolve(OutputDir.REPORT).toFile());
    List<String> backends = new ArrayList<>();
    report.findValues("backend").forEach(b -> backends.add(b.asText()));
    assertTrue(backends.contains("cuda"), backends.toString());
    assertTrue(backends.stream().allMatch(b -> b.equals("cuda") || b.equals("copy")), backends.toString());
  }

  @org.junit.jupiter.api.Test
  void repackOnTheGpuWritesTheCpuBytes(@TempDir Path tmp) throws Exception {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Run q = JobTestSupport.quantize(input, tmp.resolve("tile"), "--recipe", "int4-tile-packed", "--backend", "cpu");
    assertEquals(0, q.status(), q::toString);
    for (String layout : new String[] {"cpu", "plain"}) {
      long launches = device.launches();
      assertEquals(0, repack(tmp.resolve("tile"), tmp.resolve(layout + "-cuda"), layout, "cuda").status());
      assertTrue(device.launches() > launches, "no kernel ran for " + layout);
      assertEquals(0, repack(tmp.resolve("tile"), tmp.resolve(layout + "-cpu"), layout, "cpu").status());
      assertEquals(JobTestSupport.storedTensors(tmp.resolve(layout + "-cpu")),
          JobTestSupport.storedTensors(tmp.resolve(layout + "-cuda")), layout);
    }
  }

  private static Run repack(Path in, Path out, String layout, String backend) {
    List<String> all = new ArrayList<>(List.of("repack", "--input", in.toString(), "--output", out.toString(), "--layout",
        layout, "--backend", backend, "--shard-bytes", "65536"));
    all.addAll(List.of(JobTestSupport.LOCAL));
    Run r = JobTestSupport.cli(all.toArray(new String[0]));
    assertEquals(0, r.status(), r::toString);
    return r;
  }
}
