package shardquant.verify;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.kernels.select.Backends;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.SafetensorsWriter;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.tensor.Tensor;
import shardquant.plan.OutputFile;

/**
 * verify as a Spark job with many tasks (one per 16-row shard, two task threads): a difference in a
 * late shard, in a recorded stat or in a recorded checksum is found and named; progress is shown; the
 * backend chosen is said.
 */
class VerifyJobTest {
  /** 16 rows of 256 bf16 values per shard and per task. */
  private static final String SHARD = "8k";

  @TempDir
  Path tmp;
  private Path input;
  private Path out;

  @BeforeEach
  void quantize() throws IOException {
    input = tmp.resolve("in.safetensors");
    Random rnd = new Random(3);
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    for (String name : new String[] {"a.q_proj.weight", "a.norm.weight", "b.up_proj.weight"}) {
      long[] shape = name.contains("norm") ? new long[] {256} : new long[] {name.startsWith("a") ? 64 : 128, 256};
      float[] v = new float[Math.toIntExact(Tensor.numel(shape))];
      for (int i = 0; i < v.length; i++) {
        v[i] = (float) rnd.nextGaussian() * 0.02f;
      }
      tensors.put(name, Tensor.fromFloats(DType.BF16, shape, v));
    }
    SafetensorsWriter.write(input, tensors, Map.of());
    out = tmp.resolve("out");
    Run q = JobTestSupport.quantize(input, out, "--recipe", "int8-weight-only", "--shard-bytes", SHARD,
        "--output-file-bytes", "20000");
    assertEquals(0, q.status(), q::toString);
  }

  private Run verify(String... more) {
    List<String> args = new ArrayList<>(List.of("verify", "--input", input.toString(), "--output", out.toString(),
        "--shard-bytes", SHARD));
    args.addAll(List.of(more));
    args.addAll(List.of(JobTestSupport.LOCAL));
    return JobTestSupport.cli(args.toArray(new String[0]));
  }

  /** The file holding {@code key}, and where its bytes start in it. */
  private record Where(Path file, TensorEntry entry, long dataStart, Map<String, String> metadata) {}

  private Where find(String key) throws IOException {
    for (Path f : JobTestSupport.modelFiles(out)) {
      try (SafetensorsFile s = SafetensorsFile.open(f)) {
        for (TensorEntry e : s.entries()) {
          if (e.name().equals(key)) {
            return new Where(f, e, s.dataStart(), s.metadata());
          }
        }
      }
    }
    throw new AssertionError(key + " is in no output file");
  }

  @Test
  void cleanOutputPassesWithProgressAndSaysWhichKernelsRan() {
    Run v = verify();
    assertEquals(0, v.status(), v::toString);
    assertTrue(v.out().contains("verify: 3 tensors checked (2 quantized with int8-weight-only"), v::toString);
    assertTrue(v.out().contains("0 mismatches"), v::toString);
    // Progress on stderr, one line per update off a terminal; the last one has everything done.
    assertTrue(v.err().lines().anyMatch(l -> l.matches("verify: 3/3 tensors, .* files (\\d+)/\\1")), v::toString);
    // auto: the report names the kernels that wrote each tensor; others re-quantize it where any can run here.
    Matcher m = Pattern.compile("verify: 2 tensors written by (\\S+), re-quantized with (\\S+)").matcher(v.out());
    assertTrue(m.find(), v::toString);
    if (Backends.simdProblem() == null) {
      assertNotEquals(m.group(1), m.group(2), v::toString);
    }
    Run ref = verify("--backend", "reference");
    assertEquals(0, ref.status(), ref::toString);
    assertTrue(ref.out().contains("re-quantized with reference"), ref::toString);
    Run bad = verify("--backend", "cuda");
    assertEquals(2, bad.status(), bad::toString);
    assertTrue(bad.err().contains("--backend"), bad::toString);
  }

  /** A flipped byte in the last shard of a quantized tensor: that shard's task finds it, and the file, tensor and rows are named. */
  @Test
  void findsAFlippedByteInALateShard() throws IOException {
    Where w = find("b.up_proj._weight_qdata");
    byte[] bytes = Files.readAllBytes(w.file());
    bytes[Math.toIntExact(w.dataStart() + w.entry().begin() + w.entry().byteSize() - 1)] ^= 0x04;
    Files.write(w.file(), bytes);
    Run v = verify("--backend", "cpu");
    assertEquals(3, v.status(), v::toString);
    String file = w.file().getFileName().toString();
    assertTrue(v.out().lines().anyMatch(l -> l.equals("MISMATCH " + file + ": tensor 'b.up_proj.weight': stored"
        + " 'b.up_proj._weight_qdata' differs from re-quantizing the input at byte 4095 of its piece for rows [112, 128)")),
        v::toString);
    assertTrue(v.out().lines().anyMatch(l -> l.startsWith("MISMATCH " + file + ": stored 'b.up_proj._weight_qdata' has CRC-32C")),
        v::toString);
    assertTrue(v.out().contains("2 mismatches"), v::toString);
  }

  /** The report is recomputed from all shards' stored values: an edited max abs error in the header is caught. */
  @Test
  void findsAWrongReportStat() throws IOException {
    Where w = find("b.up_proj._weight_qdata");
    String recorded = Float.toString(OutputFile.statsIn(w.metadata()).stream()
        .filter(r -> r.tensor().equals("b.up_proj.weight")).findFirst().orElseThrow().maxAbsError());
    String after = "b.up_proj.weight\\\":{";
    replaceInHeader(w.file(), after, "max_abs_error\\\":\\\"" + recorded, "max_abs_error\\\":\\\"" + bumped(recorded));
    Run v = verify();
    assertEquals(3, v.status(), v::toString);
    assertTrue(v.out().lines().anyMatch(l -> l.startsWith("MISMATCH " + w.file().getFileName() + ": tensor 'b.up_proj.weight':"
        + " recorded SQNR") && l.endsWith(" dB, " + recorded)), v::toString);
    assertTrue(v.out().contains("1 mismatches"), v::toString);
  }

  /**
   * Every stored byte agrees, so the shards' stats come from the re-quantization (no dequantize of the
   * stored values): an edited SQNR is still caught, with each backend choice.
   */
  @Test
  void findsAWrongSqnrWhileEveryByteAgrees() throws IOException {
    Where w = find("a.q_proj._weight_qdata");
    String recorded = Double.toString(OutputFile.statsIn(w.metadata()).stream()
        .filter(r -> r.tensor().equals("a.q_proj.weight")).findFirst().orElseThrow().sqnrDb());
    String edited = bumped(recorded);
    replaceInHeader(w.file(), "a.q_proj.weight\\\":{", "sqnr_db\\\":\\\"" + recorded, "sqnr_db\\\":\\\"" + edited);
    for (String backend : List.of("cpu", "reference", "auto")) {
      Run v = verify("--backend", backend);
      assertEquals(3, v.status(), v::toString);
      assertTrue(v.out().lines().anyMatch(l -> l.equals("MISMATCH " + w.file().getFileName() + ": tensor 'a.q_proj.weight':"
          + " recorded SQNR " + edited + " dB, max abs error " + l.substring(l.lastIndexOf(", ") + 2).trim()
          + " but the stored tensor gives " + recorded + " dB, " + l.substring(l.lastIndexOf(", ") + 2).trim())),
          v::toString);
      assertTrue(v.out().contains("1 mismatches"), v::toString);
    }
  }

  /** A checksum edited in the header (the data untouched): only the checksum differs, and says so. */
  @Test
  void findsAWrongChecksum() throws IOException {
    Where w = find("a.q_proj._weight_scale");
    String crc = OutputFile.checksumsIn(w.metadata()).get("a.q_proj._weight_scale");
    String other = String.format("%08x", (int) (Long.parseLong(crc, 16) ^ 1));
    replaceInHeader(w.file(), "a.q_proj._weight_scale\\\":\\\"", crc, other);
    Run v = verify();
    assertEquals(3, v.status(), v::toString);
    assertTrue(v.out().lines().anyMatch(l -> l.equals("MISMATCH " + w.file().getFileName() + ": stored 'a.q_proj._weight_scale'"
        + " has CRC-32C " + crc + " but its header recorded " + other + " when it was written (the file changed since)")),
        v::toString);
    assertTrue(v.out().contains("1 mismatches"), v::toString);
  }

  /** The number with its leading digit changed. */
  private static String bumped(String number) {
    int at = 0;
    while (!Character.isDigit(number.charAt(at)) || number.charAt(at) == '0') {
      at++;
    }
    char c = number.charAt(at);
    return number.substring(0, at) + (c == '9' ? '8' : (char) (c + 1)) + number.substring(at + 1);
  }

  /** Replaces {@code from} by {@code to} (same length) at its first place after {@code after} in the file's header. */
  private static void replaceInHeader(Path file, String after, String from, String to) throws IOException {
    assertEquals(from.length(), to.length(), from + " -> " + to);
    byte[] bytes = Files.readAllBytes(file);
    String text = new String(bytes, StandardCharsets.ISO_8859_1);
    int start = text.indexOf(after);
    assertTrue(start > 0, () -> after + " not in " + text.substring(0, 600));
    int at = text.indexOf(from, start);
    assertTrue(at > 0, () -> from + " not after " + after + " in " + text.substring(0, 2000));
    System.arraycopy(to.getBytes(StandardCharsets.ISO_8859_1), 0, bytes, at, to.length());
    Files.write(file, bytes);
  }
}
