package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.kernels.backend.cuda.CudaProbe;

/** {@code --backend cuda} where CUDA cannot run: exit 2, one line naming the probe's reason, nothing written. */
class CudaBackendCliTest {
  @Test
  void cudaUnavailableIsOneLineAndExit2(@TempDir Path tmp) {
    assumeFalse(CudaProbe.available(), "CUDA is available here");
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    Path out = tmp.resolve("out");
    Run r = JobTestSupport.quantize(input, out, "--recipe", "int8-weight-only", "--backend", "cuda");
    assertEquals(2, r.status(), r::toString);
    List<String> lines = r.err().lines().map(String::strip).filter(l -> !l.isEmpty()).toList();
    assertEquals(1, lines.size(), () -> "stderr must be one line:\n" + r);
    assertTrue(lines.get(0).contains("--backend") && lines.get(0).contains(CudaProbe.problem())
        && lines.get(0).contains("libcuda"), r::toString);
    assertFalse(Files.exists(out), "nothing written");
  }
}
