package shardquant;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import shardquant.cli.MainAccess;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.TensorEntry;

/** Shared by the job's tests: run the CLI in this JVM, find the golden files, read an output directory. */
public final class JobTestSupport {
  /** Embedded Spark for tests: 2 threads, Spark's retries, loopback only. */
  public static final String[] LOCAL = {"--master", "local[2,4]", "--conf", "spark.driver.host=127.0.0.1", "--conf",
      "spark.driver.bindAddress=127.0.0.1", "--conf", "spark.ui.enabled=false"};

  private JobTestSupport() {}

  /** Exit status and what the command printed. */
  public record Run(int status, String out, String err) {
    @Override
    public String toString() {
      return "exit " + status + "\n--- stdout\n" + out + "\n--- stderr\n" + err;
    }
  }

  public static Run cli(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int status;
    try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
        PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
      status = MainAccess.run(args, o, e);
    }
    return new Run(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  /** {@code quantize} in embedded test Spark with the given extra arguments. */
  public static Run quantize(Path input, Path output, String... args) {
    List<String> all = new ArrayList<>(List.of("quantize", "--input", input.toString(), "--output", output.toString()));
    all.addAll(List.of(args));
    all.addAll(List.of(LOCAL));
    return cli(all.toArray(new String[0]));
  }

  /** {@code shared/golden/<name>} beside the checkout; fails (never skips) when missing. */
  public static Path golden(String name) {
    for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
      Path candidate = p.resolve("shared").resolve("golden").resolve(name);
      if (Files.isDirectory(candidate)) {
        return candidate;
      }
    }
    throw new IllegalStateException("shared/golden/" + name + " not found above " + Path.of("").toAbsolutePath());
  }

  /** Every stored tensor of every {@code model-*.safetensors} in {@code dir}: key -> dtype, shape and bytes. */
  public static Map<String, String> storedTensors(Path dir) throws IOException {
    Map<String, String> out = new TreeMap<>();
    for (Path f : modelFiles(dir)) {
      try (SafetensorsFile s = SafetensorsFile.open(f)) {
        for (TensorEntry e : s.entries()) {
          out.put(e.name(), describe(e, s.read(e.name()).bytes()));
        }
      }
    }
    return out;
  }

  /** The same for one safetensors file. */
  public static Map<String, String> storedTensorsOf(Path file) throws IOException {
    Map<String, String> out = new TreeMap<>();
    try (SafetensorsFile s = SafetensorsFile.open(file)) {
      for (TensorEntry e : s.entries()) {
        out.put(e.name(), describe(e, s.read(e.name()).bytes()));
      }
    }
    return out;
  }

  /** Every {@code __metadata__} entry of every output file, merged (per-tensor keys are unique across files). */
  public static Map<String, String> metadata(Path dir) throws IOException {
    Map<String, String> out = new TreeMap<>();
    for (Path f : modelFiles(dir)) {
      try (SafetensorsFile s = SafetensorsFile.open(f)) {
        out.putAll(s.metadata());
      }
    }
    return out;
  }

  public static List<Path> modelFiles(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(p -> p.getFileName().toString().matches("model-\\d{5}-of-\\d{5}\\.safetensors")).sorted().toList();
    }
  }

  /** All names in {@code dir}, hidden ones included. */
  public static List<String> listing(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  private static String describe(TensorEntry e, ByteBuffer bytes) {
    byte[] b = new byte[bytes.remaining()];
    bytes.duplicate().get(b);
    return e.dtype().safetensorsName() + java.util.Arrays.toString(e.shape()) + " sha256:" + sha256(b);
  }

  private static String sha256(byte[] b) {
    try {
      return java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(b));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
