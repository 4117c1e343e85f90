package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.ChildJvm;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;

/**
 * Without {@code --add-modules=jdk.incubator.vector} nothing breaks: the job runs the scalar reference,
 * says so once, and writes the same files, byte for byte, as the SIMD backend in this JVM (which has the
 * module).
 */
class NoVectorModuleTest {
  @TempDir
  Path tmp;

  @Test
  void referenceRunsAndWritesTheSameBytes() throws IOException, InterruptedException {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Path out = tmp.resolve("no-module");
    List<String> flags = ChildJvm.jvmFlags().stream().filter(f -> !f.contains("jdk.incubator.vector")).toList();
    List<String> args = List.of("quantize", "--input", input.toString(), "--output", out.toString(), "--recipe",
        "int4-tile-packed", "--master", "local[2]", "--conf", "spark.driver.host=127.0.0.1", "--conf",
        "spark.driver.bindAddress=127.0.0.1");
    int status;
    String logs;
    try (ChildJvm cli = ChildJvm.startWithFlags(flags, "no-module", tmp.resolve("logs"), ChildJvm.testClasspath(),
        Map.of(), List.of("-Xmx512m"), "shardquant.cli.Main", args)) {
      status = cli.waitFor(Duration.ofSeconds(120));
      logs = cli.logs();
    }
    assertEquals(0, status, logs);
    assertTrue(logs.contains("CPU SIMD kernels off") && logs.contains("jdk.incubator.vector"), logs);
    var report = new ObjectMapper().readTree(out.resolve("quantization_report.json").toFile());
    report.path("tensors").forEach(t -> assertEquals("reference", t.path("backend").asText(), logs));

    Run simd = JobTestSupport.quantize(input, tmp.resolve("simd"), "--recipe", "int4-tile-packed");
    assertEquals(0, simd.status(), simd::toString);
    var simdReport = new ObjectMapper().readTree(tmp.resolve("simd").resolve("quantization_report.json").toFile());
    simdReport.path("tensors").forEach(t -> assertEquals("cpu-simd", t.path("backend").asText()));
    SameOutput.assertSame(tmp.resolve("simd"), out);
  }
}
