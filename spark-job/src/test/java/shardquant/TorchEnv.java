package shardquant;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * The Python environment of {@code shared/tools/torch-env.sh} (PyTorch CPU, transformers 5, torchao 0.19,
 * built offline from the wheels these machines carry), for tests that load shardquant's output with the
 * real loaders. Built once per machine under {@code ~/.cache/shardquant/torch-env} (a minute or two the
 * first time). In CI (env CI set) a missing environment fails the test; elsewhere it skips with the reason.
 */
public final class TorchEnv {
  private static Path python;

  private TorchEnv() {}

  /** Exit status and everything the script printed (stdout and stderr together). */
  public record Result(int status, String output) {}

  public static synchronized Path python() {
    if (python != null) {
      return python;
    }
    Path script = null;
    for (Path p = Path.of("").toAbsolutePath(); p != null && script == null; p = p.getParent()) {
      Path candidate = p.resolve("shared/tools/torch-env.sh");
      script = Files.isRegularFile(candidate) ? candidate : null;
    }
    if (script == null) {
      return unavailable("shared/tools/torch-env.sh not found above " + Path.of("").toAbsolutePath());
    }
    Path dir = Path.of(System.getProperty("user.home"), ".cache", "shardquant", "torch-env");
    try {
      Files.createDirectories(dir.getParent());
      Result r = exec(List.of("bash", script.toString(), dir.toString()), 1200);
      List<String> lines = r.output().lines().toList();
      String last = lines.isEmpty() ? "" : lines.get(lines.size() - 1).strip();
      if (r.status() != 0 || !Files.isExecutable(Path.of(last))) {
        return unavailable("torch-env.sh failed (exit " + r.status() + "):\n" + r.output());
      }
      python = Path.of(last);
      return python;
    } catch (IOException e) {
      return unavailable("torch-env.sh could not run: " + e);
    }
  }

  /** Runs {@code tools/<script>} of this repository with the environment's python. */
  public static Result run(String script, List<String> args, long timeoutSeconds) throws IOException {
    Path tool = null;
    for (Path p = Path.of("").toAbsolutePath(); p != null && tool == null; p = p.getParent()) {
      Path candidate = p.resolve("tools").resolve(script);
      tool = Files.isRegularFile(candidate) ? candidate : null;
    }
    if (tool == null) {
      throw new IOException("tools/" + script + " not found above " + Path.of("").toAbsolutePath());
    }
    List<String> cmd = new ArrayList<>(List.of(python().toString(), tool.toString()));
    cmd.addAll(args);
    return exec(cmd, timeoutSeconds);
  }

  private static Result exec(List<String> cmd, long timeoutSeconds) throws IOException {
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
    pb.environment().put("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1");
    pb.environment().put("PYTHONUNBUFFERED", "1");
    pb.environment().put("OMP_NUM_THREADS", "2");
    // The golden logits were made on a CPU without AMX: capping oneDNN there reproduces them bit for bit on
    // an AMX machine (a cap above a CPU's own level changes nothing). hf_check's --same-as covers CPUs whose
    // kernels still differ.
    pb.environment().put("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16");
    Path log = Files.createTempFile("torch-env", ".log");
    pb.redirectOutput(log.toFile());
    Process p = pb.start();
    try {
      if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        return new Result(-1, "timed out after " + timeoutSeconds + " s: " + cmd + "\n" + Files.readString(log));
      }
      return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    } catch (InterruptedException e) {
      p.destroyForcibly();
      Thread.currentThread().interrupt();
      throw new IOException("interrupted", e);
    } finally {
      Files.deleteIfExists(log);
    }
  }

  private static Path unavailable(String why) {
    if (System.getenv("CI") != null) {
      fail("the Python interoperability environment is required in CI: " + why);
    }
    Assumptions.abort("skipped: no Python interoperability environment: " + why);
    return null;
  }
}
