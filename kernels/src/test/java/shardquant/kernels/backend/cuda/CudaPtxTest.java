package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The build compiled every src/main/cuda/*.cu to PTX resources for every target (it needs nvcc; CI has
 * it), with every kernel {@link CudaModules} lists and no fused multiply-add (--fmad=false: PyTorch
 * rounds every op), and CudaModules lists exactly the kernels the sources define.
 */
class CudaPtxTest {
  private static final Pattern KERNEL = Pattern.compile("extern \"C\" __global__ void (?:__launch_bounds__\\([^)]*\\) )?(\\w+)\\(");

  @Test
  void modulesListEveryKernelOfTheSources() throws IOException {
    Map<String, List<String>> found = new TreeMap<>();
    try (Stream<Path> s = Files.list(CudaEmulator.CUDA_SOURCES)) {
      for (Path p : s.filter(p -> p.toString().endsWith(".cu")).toList()) {
        List<String> kernels = new ArrayList<>();
        Matcher m = KERNEL.matcher(Files.readString(p));
        while (m.find()) {
          kernels.add(m.group(1));
        }
        found.put(p.getFileName().toString().replaceFirst("\\.cu$", ""), kernels);
      }
    }
    Map<String, List<String>> listed = new TreeMap<>();
    CudaModules.MODULES.forEach(mod -> listed.put(mod, CudaModules.kernels(mod)));
    assertEquals(found, listed, "CudaModules.MODULES_AND_KERNELS against src/main/cuda");
  }

  @ParameterizedTest
  @ValueSource(strings = {"compute_80", "compute_90"})
  void everyKernelShipsAsPtx(String arch) throws IOException {
    for (String module : CudaModules.MODULES) {
      String name = CudaModules.resource(module, arch);
      String ptx;
      try (InputStream in = CudaPtxTest.class.getResourceAsStream(name)) {
        assertNotNull(in, name + " is not on the classpath: the build found no nvcc (see its warning); install the CUDA"
            + " toolkit or pass -Dnvcc=/path/to/nvcc");
        ptx = new String(in.readAllBytes(), StandardCharsets.US_ASCII);
      }
      assertTrue(ptx.startsWith("//"), name + " does not start like nvcc's PTX: " + ptx.substring(0, Math.min(80, ptx.length())));
      for (String kernel : CudaModules.kernels(module)) {
        assertTrue(ptx.contains(".entry " + kernel + "("), name + " has no " + kernel + " entry");
      }
      assertTrue(ptx.contains(".target sm_" + arch.substring("compute_".length())), name + " targets another architecture");
      assertFalse(ptx.contains("fma.rn.f32") || ptx.contains("fma.rn.f64"), name + " fuses a multiply-add: build with --fmad=false");
    }
  }
}
