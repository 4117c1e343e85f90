package shardquant.kernels.backend.cuda;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Builds the CUDA emulator (src/test/cuda-emu: every src/main/cuda/*.cu compiled for the host with g++
 * and AddressSanitizer) into target/cuda-emu/sq-emu, once per change of its sources. See
 * src/test/cuda-emu/README.md.
 */
final class CudaEmulator {
  /** The kernels module: the working directory of its tests, or ../kernels for another module's. */
  private static final Path MODULE = Files.isDirectory(Path.of("src/test/cuda-emu")) ? Path.of("") : Path.of("../kernels");
  static final Path CUDA_SOURCES = MODULE.resolve("src/main/cuda");
  static final Path EMU_SOURCES = MODULE.resolve("src/test/cuda-emu");
  static final Path BINARY = Path.of("target/cuda-emu/sq-emu");
  private static String problem;
  private static boolean built;

  private CudaEmulator() {}

  /** The emulator binary, built if any source is newer; an AssertionError with g++'s output if it does not build. */
  static synchronized Path binary() {
    if (built) {
      return BINARY;
    }
    if (problem != null) {
      throw new AssertionError(problem);
    }
    try {
      List<Path> cu = list(CUDA_SOURCES, ".cu");
      List<Path> all = new ArrayList<>(cu);
      all.addAll(list(CUDA_SOURCES, ".cuh"));
      all.addAll(list(EMU_SOURCES, ".h"));
      all.addAll(list(EMU_SOURCES, ".cu"));
      all.addAll(list(EMU_SOURCES, ".cpp"));
      if (!upToDate(all)) {
        Files.createDirectories(BINARY.getParent());
        // AddressSanitizer's redzones also around __shared__ variables, which live in section sq_shared.
        List<String> common = List.of("g++", "-std=c++20", "-O1", "-g", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all", "-fsanitize-sections=sq_shared", "-fno-omit-frame-pointer",
            "-ffp-contract=off", "-pthread", "-I" + EMU_SOURCES, "-I" + CUDA_SOURCES);
        // The emulator itself with AddressSanitizer's checks inline: its accesses are no kernel's.
        Path main = BINARY.resolveSibling("emu_main.o");
        List<String> compileMain = new ArrayList<>(common);
        compileMain.addAll(List.of("-c", EMU_SOURCES.resolve("emu_main.cpp").toString(), "-o", main.toString()));
        gxx(compileMain);
        // The kernels with the checks as calls, which the emulator's memory order takes (emu_main.cpp,
        // "Memory order").
        List<String> cmd = new ArrayList<>(common);
        cmd.addAll(List.of("--param", "asan-instrumentation-with-call-threshold=0", "-x", "c++"));
        cu.forEach(p -> cmd.add(p.toString()));
        list(EMU_SOURCES, ".cu").forEach(p -> cmd.add(p.toString())); // the emulator's own test kernels
        cmd.addAll(List.of("-x", "none", main.toString(), "-o", BINARY + ".tmp"));
        gxx(cmd);
        Files.move(Path.of(BINARY + ".tmp"), BINARY, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
      }
      built = true;
      return BINARY;
    } catch (IOException e) {
      problem = "the CUDA emulator did not build: " + e;
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  private static void gxx(List<String> cmd) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (!p.waitFor(10, TimeUnit.MINUTES) || p.exitValue() != 0) {
      problem = "the CUDA emulator did not build (" + String.join(" ", cmd) + "):\n" + out;
      throw new AssertionError(problem);
    }
  }

  private static boolean upToDate(List<Path> sources) throws IOException {
    if (!Files.exists(BINARY)) {
      return false;
    }
    FileTime built = Files.getLastModifiedTime(BINARY);
    for (Path s : sources) {
      if (Files.getLastModifiedTime(s).compareTo(built) > 0) {
        return false;
      }
    }
    return true;
  }

  private static List<Path> list(Path dir, String suffix) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(p -> p.getFileName().toString().endsWith(suffix)).sorted().toList();
    }
  }
}
