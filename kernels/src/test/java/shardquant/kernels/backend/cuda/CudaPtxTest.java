package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The build compiled src/main/cuda to PTX resources for every target (it needs nvcc; CI has it). */
class CudaPtxTest {
  @ParameterizedTest
  @ValueSource(strings = {"compute_80", "compute_90"})
  void int8KernelShipsAsPtx(String arch) throws IOException {
    String name = CudaModules.resource("int8_rowwise", arch);
    String ptx;
    try (InputStream in = CudaPtxTest.class.getResourceAsStream(name)) {
      assertNotNull(in, name + " is not on the classpath: the build found no nvcc (see its warning); install the CUDA"
          + " toolkit or pass -Dnvcc=/path/to/nvcc");
      ptx = new String(in.readAllBytes(), StandardCharsets.US_ASCII);
    }
    assertTrue(ptx.startsWith("//"), name + " does not start like nvcc's PTX: " + ptx.substring(0, Math.min(80, ptx.length())));
    assertTrue(ptx.contains(".entry int8_rowwise_bf16("), name + " has no int8_rowwise_bf16 entry");
    assertTrue(ptx.contains(".target sm_" + arch.substring("compute_".length())), name + " targets another architecture");
  }
}
