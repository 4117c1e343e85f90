package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.safetensors.SafetensorsWriter;
import shardquant.kernels.tensor.Tensor;

/**
 * DESIGN.md, "Bad input gets a clear error": every kind of bad input or bad argument exits 2 with
 * exactly one line on stderr that names the file and the tensor (where there is one), no stack
 * trace, and nothing in the output directory that a loader could take for a checkpoint.
 */
class BadInputTest {
  static final String UP = "model.layers.0.mlp.up_proj.weight";
  static final String Q = "model.layers.0.self_attn.q_proj.weight";
  static final String NORM = "model.norm.weight";

  @TempDir
  Path tmp;

  // ---- helpers ---------------------------------------------------------------------------------

  /** Deterministic weights in [-1, 1). */
  static float[] values(int n, int seed) {
    float[] v = new float[n];
    long x = 0x9E3779B97F4A7C15L * (seed + 1);
    for (int i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 7;
      x ^= x << 17;
      v[i] = ((x >>> 40) / (float) (1L << 24)) * 2 - 1;
    }
    return v;
  }

  /** A small Llama-like checkpoint: two 2-D weights (K = 64) and a 1-D norm. */
  static Map<String, Tensor> model(int seed) {
    Map<String, Tensor> m = new LinkedHashMap<>();
    m.put(UP, Tensor.fromFloats(DType.BF16, new long[] {64, 64}, values(64 * 64, seed)));
    m.put(Q, Tensor.fromFloats(DType.BF16, new long[] {32, 64}, values(32 * 64, seed + 1)));
    m.put(NORM, Tensor.fromFloats(DType.BF16, new long[] {64}, values(64, seed + 2)));
    return m;
  }

  static Path write(Path file, Map<String, Tensor> tensors) throws IOException {
    SafetensorsWriter.write(file, tensors, Map.of("format", "pt"));
    return file;
  }

  /** A safetensors file from raw parts: 8-byte little-endian header length, the header text, the data. */
  static Path raw(Path file, long headerLength, String header, int dataBytes) throws IOException {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(headerLength).put(h);
    Files.write(file, b.array());
    return file;
  }

  static Path raw(Path file, String header, int dataBytes) throws IOException {
    return raw(file, header.getBytes(StandardCharsets.UTF_8).length, header, dataBytes);
  }

  /**
   * Exit 2, one line on stderr holding every {@code expected} text, no stack trace, and no checkpoint
   * (nor anything else) in {@code out}.
   */
  static String assertRefused(Run r, Path out, String... expected) throws IOException {
    List<String> lines = r.err().lines().map(String::strip).filter(l -> !l.isEmpty()).toList();
    assertEquals(1, lines.size(), () -> "stderr must be one line:\n" + r);
    return assertRefusedAfterProgress(r, out, expected);
  }

  /**
   * The same for input found bad on an executor, after the job started: the driver has already printed
   * its plan line and maybe progress lines on stderr (as every run does), so the error is the one other
   * line, and the last.
   */
  static String assertRefusedAfterProgress(Run r, Path out, String... expected) throws IOException {
    assertEquals(2, r.status(), r::toString);
    List<String> lines = r.err().lines().map(String::strip).filter(l -> !l.isEmpty()).toList();
    List<String> errors = lines.stream().filter(l -> !l.startsWith("plan: ") && !l.startsWith("quantize: ")).toList();
    assertEquals(1, errors.size(), () -> "stderr must hold one error line:\n" + r);
    String line = errors.get(0);
    assertEquals(line, lines.get(lines.size() - 1), () -> "the error must be the last line:\n" + r);
    assertTrue(line.startsWith("shardquant quantize: "), line);
    for (String e : expected) {
      assertTrue(line.contains(e), () -> "stderr should name '" + e + "':\n" + r);
    }
    assertFalse(r.err().contains("Exception"), r::toString);
    assertFalse(r.err().lines().anyMatch(l -> l.strip().startsWith("at ")), r::toString);
    assertFalse(r.out().contains("Exception"), r::toString);
    if (out != null && Files.isDirectory(out)) {
      List<String> left = JobTestSupport.listing(out);
      assertFalse(left.contains("_SUCCESS"), left::toString);
      assertFalse(left.contains("model.safetensors.index.json"), left::toString);
      assertTrue(left.stream().noneMatch(n -> n.startsWith("model-")), left::toString);
      assertEquals(List.of(), left, "the output directory should be empty");
    }
    return line;
  }

  Run quantize(Path input, String... args) {
    return JobTestSupport.quantize(input, tmp.resolve("out"), args);
  }

  Path out() {
    return tmp.resolve("out");
  }

  // ---- corrupt files -------------------------------------------------------------------------

  @Test
  void truncatedFile() throws IOException {
    Path in = write(tmp.resolve("cut.safetensors"), model(1));
    try (FileChannel ch = FileChannel.open(in, StandardOpenOption.WRITE)) {
      ch.truncate(ch.size() - 100);
    }
    assertRefused(quantize(in, "--recipe", "8da4w"), out(), "cut.safetensors", NORM);
    assertFalse(Files.exists(out()), "nothing is created for input refused at planning");
  }

  @Test
  void headerLengthPastTheEndOfTheFile() throws IOException {
    String header = "{\"w.weight\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}";
    Path in = raw(tmp.resolve("long.safetensors"), 4096, header, 8);
    String line = assertRefused(quantize(in, "--recipe", "8da4w"), out(), "long.safetensors");
    assertTrue(line.contains("past the end"), line);
    assertFalse(Files.exists(out()));
  }

  @Test
  void headerNotJson() throws IOException {
    Path in = raw(tmp.resolve("garbage.safetensors"), "{this is not json}      ", 16);
    String line = assertRefused(quantize(in, "--recipe", "8da4w"), out(), "garbage.safetensors");
    assertTrue(line.contains("JSON"), line);
    assertFalse(Files.exists(out()));
  }

  @Test
  void unknownDtype() throws IOException {
    String header = "{\"a.weight\":{\"dtype\":\"F8_E9\",\"shape\":[4,4],\"data_offsets\":[0,16]}}";
    Path in = raw(tmp.resolve("dtype.safetensors"), header, 16);
    assertRefused(quantize(in, "--recipe", "8da4w"), out(), "dtype.safetensors", "a.weight", "F8_E9");
    assertFalse(Files.exists(out()));
  }

  @Test
  void shapeNotMatchingItsByteRange() throws IOException {
    String header = "{\"a.weight\":{\"dtype\":\"BF16\",\"shape\":[4,4],\"data_offsets\":[0,16]}}";
    Path in = raw(tmp.resolve("shape.safetensors"), header, 16);
    String line = assertRefused(quantize(in, "--recipe", "8da4w"), out(), "shape.safetensors", "a.weight");
    assertTrue(line.contains("32"), line);
    assertFalse(Files.exists(out()));
  }

  @Test
  void overlappingOffsets() throws IOException {
    String header = "{\"a.weight\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
        + "\"b.weight\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[4,12]}}";
    Path in = raw(tmp.resolve("overlap.safetensors"), header, 12);
    String line = assertRefused(quantize(in, "--recipe", "8da4w"), out(), "overlap.safetensors", "b.weight", "a.weight");
    assertTrue(line.contains("overlap"), line);
    assertFalse(Files.exists(out()));
  }

  // ---- tensors the job cannot take -----------------------------------------------------------

  @Test
  void tensorTheRecipeCannotTake() throws IOException {
    Map<String, Tensor> m = model(2);
    m.put("x.weight", Tensor.fromFloats(DType.BF16, new long[] {16, 100}, values(1600, 9)));
    Path in = write(tmp.resolve("k100.safetensors"), m);
    String line = assertRefused(quantize(in, "--recipe", "8da4w"), out(), "k100.safetensors", "x.weight");
    assertTrue(line.contains("K = 100") && line.contains("32"), line);
    assertFalse(Files.exists(out()));
  }

  /**
   * NaN is found on an executor, by whichever backend's kernel reads the data: the one line still names
   * file, tensor, row and column, for every recipe family.
   */
  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.CsvSource({"8da4w, 32", "int4-tile-packed, 64", "int4-cpu, 64", "int8-dynamic, 0",
      "nf4, 64"})
  void nanInAWeight(String recipe, int group) throws IOException {
    Map<String, Tensor> m = model(3);
    if (recipe.equals("nf4")) { // whole 64x256-element blocks
      m.put(UP, Tensor.fromFloats(DType.BF16, new long[] {256, 64}, values(256 * 64, 3)));
    }
    m.get(UP).setFloat(5 * 64 + 7, Float.NaN);
    Path in = write(tmp.resolve("nan.safetensors"), m);
    String[] args = recipe.equals("nf4") ? new String[] {"--recipe", recipe, "--exclude", ".*q_proj.*"}
        : new String[] {"--recipe", recipe, "--group-size", Integer.toString(group)};
    assertRefusedAfterProgress(quantize(in, args), out(), "nan.safetensors", UP, "NaN", "row 5", "column 7");
  }

  @Test
  void infinityInAWeight() throws IOException {
    Map<String, Tensor> m = model(4);
    m.get(Q).setFloat(31 * 64 + 63, Float.POSITIVE_INFINITY);
    Path in = write(tmp.resolve("inf.safetensors"), m);
    // Several shards over several output files: the refusal must leave none of them behind.
    assertRefusedAfterProgress(quantize(in, "--recipe", "8da4w", "--shard-bytes", "2048", "--output-file-bytes", "4096"),
        out(),
        "inf.safetensors", Q, "Infinity", "row 31", "column 63");
  }

  // ---- paths ----------------------------------------------------------------------------------

  @Test
  void outputPathIsARegularFile() throws IOException {
    Path in = write(tmp.resolve("ok.safetensors"), model(5));
    Path file = Files.writeString(tmp.resolve("out"), "my notes\n");
    assertRefused(quantize(in, "--recipe", "8da4w"), null, "out", "is a file");
    assertEquals("my notes\n", Files.readString(file), "the file is left alone");
  }

  @Test
  void inputIndexNamesAMissingFile() throws IOException {
    Path dir = Files.createDirectory(tmp.resolve("ckpt"));
    write(dir.resolve("model-00001-of-00002.safetensors"), model(6));
    Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"metadata\":{},\"weight_map\":{"
        + "\"" + UP + "\":\"model-00001-of-00002.safetensors\",\"" + Q + "\":\"model-00001-of-00002.safetensors\","
        + "\"" + NORM + "\":\"model-00001-of-00002.safetensors\",\"lm_head.weight\":\"model-00002-of-00002.safetensors\"}}");
    assertRefused(quantize(dir, "--recipe", "8da4w"), out(), "model.safetensors.index.json",
        "model-00002-of-00002.safetensors", "does not exist");
    assertFalse(Files.exists(out()));
  }

  @Test
  void includeSelectingAOneDimensionalTensor() throws IOException {
    Path in = write(tmp.resolve("ok.safetensors"), model(7));
    String line = assertRefused(quantize(in, "--recipe", "8da4w", "--include", "model\\.norm\\.weight"), out(),
        "ok.safetensors", NORM);
    assertTrue(line.contains("1-D"), line);
    assertFalse(Files.exists(out()));
  }

  // ---- arguments ------------------------------------------------------------------------------

  @Test
  void unknownRecipe() throws IOException {
    Path in = write(tmp.resolve("ok.safetensors"), model(8));
    assertRefused(quantize(in, "--recipe", "int3-magic"), out(), "int3-magic");
    assertFalse(Files.exists(out()));
  }

  @Test
  void groupSizeTheRecipeDoesNotTake() throws IOException {
    Path in = write(tmp.resolve("ok.safetensors"), model(9));
    assertRefused(quantize(in, "--recipe", "int4-tile-packed", "--group-size", "48"), out(), "48");
    assertFalse(Files.exists(out()));
  }

  @Test
  void groupSizeNotANumber() throws IOException {
    Path in = write(tmp.resolve("ok.safetensors"), model(9));
    assertRefused(quantize(in, "--recipe", "8da4w", "--group-size", "lots"), out(), "--group-size", "lots");
    assertFalse(Files.exists(out()));
  }

  @Test
  void unknownOption() throws IOException {
    Path in = write(tmp.resolve("ok.safetensors"), model(10));
    assertRefused(quantize(in, "--recipe", "8da4w", "--frobnicate", "yes"), out(), "--frobnicate");
    assertFalse(Files.exists(out()));
  }

  @Test
  void missingInput() throws IOException {
    Run r = JobTestSupport.cli("quantize", "--output", out().toString(), "--recipe", "8da4w");
    assertRefused(r, out(), "--input");
    assertFalse(Files.exists(out()));
  }

  @Test
  void inputThatDoesNotExist() throws IOException {
    assertRefused(quantize(tmp.resolve("nowhere.safetensors"), "--recipe", "8da4w"), out(), "nowhere.safetensors");
    assertFalse(Files.exists(out()));
  }
}
