package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static shardquant.job.BadInputTest.assertRefused;
import static shardquant.job.BadInputTest.assertRefusedAfterProgress;
import static shardquant.job.BadInputTest.model;
import static shardquant.job.BadInputTest.write;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.arrow.ArrowShards;
import shardquant.arrow.QuantizedShard;
import shardquant.arrow.ShardBatch;
import shardquant.io.FileNames;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.tensor.Tensor;

/**
 * Names and paths read from the input are data (STYLE.md): a tensor name never reaches the file system
 * except through {@link FileNames#of}, a weight_map entry must be a plain file name in the checkpoint's
 * directory, and names that would collide in the output, empty tensors and a second (Mistral
 * consolidated) copy of the weights are dealt with at plan time.
 */
class HostileInputTest {
  static final String UP = BadInputTest.UP;
  static final String Q = BadInputTest.Q;
  static final String NORM = BadInputTest.NORM;

  @TempDir
  Path tmp;

  static float[] floats(int n, int seed) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) Math.sin(seed * 7919 + i);
    }
    return v;
  }

  // ---- FileNames ------------------------------------------------------------------------------

  static final String NUL_NEWLINE = "model.\u0000layers\n.0.weight";

  /** Names a checkpoint may hold that must not become paths as they are. */
  static List<String> hostileNames() {
    return List.of("../../esc/x.weight", "/abs/y.weight", "a/../../b.weight", "..", ".", "a/b.weight", "a%2Fb.weight",
        "a\\b.weight", "..weight", ".hidden.weight", "~", "x~0123456789abcdef", NUL_NEWLINE, "tab\tand space.weight",
        "caf\u00e9.weight", "cafe\u0301.weight", "\ud835\udc00.weight", "\ud800.weight", "\udc00.weight",
        "l".repeat(1000), "l".repeat(999) + "m", "/".repeat(1000), "\u00e9".repeat(500), "");
  }

  @Test
  void ordinaryNamesAreTheirOwnFileNames() {
    for (String n : List.of(UP, "lm_head.weight", "model.embed_tokens.weight", "layers.0.attention.wq.weight",
        "Model-X_2.weight")) {
      assertEquals(n, FileNames.of(n));
    }
  }

  @Test
  void anyNameIsOneSafeComponentAndDistinctNamesStayDistinct() {
    Set<String> seen = new HashSet<>();
    Path dir = Path.of("dump");
    for (String n : hostileNames()) {
      String f = FileNames.of(n);
      String shown = n.length() > 40 ? n.substring(0, 40) + "..." : n;
      assertFalse(f.isEmpty() || f.equals(".") || f.equals(".."), shown + " -> " + f);
      assertFalse(f.startsWith("."), shown + " -> " + f + " is hidden");
      assertTrue(f.chars().allMatch(c -> c > 0x20 && c < 0x7f && c != '/' && c != '\\'), shown + " -> " + f);
      assertTrue(f.length() <= FileNames.MAX_BYTES, shown + " -> " + f.length() + " bytes");
      assertEquals(dir, dir.resolve(f).normalize().getParent(), shown + " -> " + f);
      assertTrue(seen.add(f), shown + " -> " + f + " is also another name's file name");
    }
    assertEquals("%2E.%2F..%2Fesc%2Fx.weight", FileNames.of("../../esc/x.weight"));
    assertEquals("a%252Fb.weight", FileNames.of("a%2Fb.weight"));
  }

  @Test
  void aCutNameKeepsWholeEscapes() {
    String f = FileNames.of("/".repeat(1000));
    assertTrue(f.matches("(%2F)+~[0-9a-f]{16}"), f);
    String g = FileNames.of("\u00e9".repeat(500));
    assertTrue(g.matches("(%C3%A9)+~[0-9a-f]{16}"), g);
  }

  // ---- --dump-shards --------------------------------------------------------------------------

  /** Whether today's header parser takes a tensor of this name (it may come to refuse control characters). */
  boolean parserAccepts(String name) throws IOException {
    Path probe = tmp.resolve("probe.safetensors");
    write(probe, Map.of(name, Tensor.fromFloats(DType.BF16, new long[] {1}, new float[] {1})));
    try (SafetensorsFile f = SafetensorsFile.open(probe)) {
      return f.entries().stream().anyMatch(e -> e.name().equals(name));
    } catch (IOException | RuntimeException e) {
      return false;
    } finally {
      Files.delete(probe);
    }
  }

  /**
   * Hostile tensor names quantized with {@code --dump-shards sandbox/dump} (missing: the job makes it):
   * every file the job creates is the output's, or a direct child of the dump directory, one pair of
   * shard files per name, each holding its tensor's name.
   */
  @Test
  void dumpedShardsStayInTheirDirectory() throws IOException {
    List<String> names = new ArrayList<>(List.of(UP, "../../esc/x.weight", "/abs/y.weight", "a/../../b.weight", "..", ".",
        "a/b.weight", "a%2Fb.weight", "l".repeat(1000), "l".repeat(999) + "m"));
    if (parserAccepts(NUL_NEWLINE)) {
      names.add(NUL_NEWLINE);
    }
    Map<String, Tensor> m = new LinkedHashMap<>();
    for (int i = 0; i < names.size(); i++) {
      m.put(names.get(i), Tensor.fromFloats(DType.BF16, new long[] {8, 64}, floats(8 * 64, i)));
    }
    Path sandbox = Files.createDirectory(tmp.resolve("sandbox"));
    Path in = write(sandbox.resolve("in.safetensors"), m);
    Path out = sandbox.resolve("out");
    Path dump = sandbox.resolve("dump");
    Run r = JobTestSupport.quantize(in, out, "--recipe", "8da4w", "--include", "(?s).*", "--dump-shards", dump.toString(),
        "--shard-bytes", "512");
    assertEquals(0, r.status(), r::toString);
    assertTrue(r.err().contains("(" + names.size() + " to quantize"), r::toString);

    List<Path> everything;
    try (Stream<Path> s = Files.walk(tmp)) {
      everything = s.filter(p -> !p.equals(tmp) && !p.equals(sandbox) && !p.equals(in) && !p.equals(out) && !p.equals(dump)
          && !p.startsWith(out)).toList();
    }
    List<Path> astray = everything.stream().filter(p -> !p.getParent().equals(dump) || !Files.isRegularFile(p)).toList();
    assertEquals(List.of(), astray, "created outside " + dump + ", or not a file directly in it");

    Set<String> expected = new TreeSet<>();
    for (String n : names) {
      expected.add(FileNames.of(n) + ".rows-0-4.arrow");
      expected.add(FileNames.of(n) + ".rows-4-8.arrow");
    }
    assertEquals(2 * names.size(), expected.size(), "distinct names give distinct files");
    assertEquals(expected, everything.stream().map(p -> p.getFileName().toString()).collect(Collectors.toCollection(TreeSet::new)));
    assertTrue(expected.contains(UP + ".rows-0-4.arrow"), "an ordinary name keeps README's DIR/<tensor>.rows-<a>-<b>.arrow");
    try (RootAllocator a = new RootAllocator()) {
      for (String n : names) {
        try (ShardBatch<?> b = ArrowShards.readIpcFile(dump.resolve(FileNames.of(n) + ".rows-4-8.arrow"), a)) {
          assertEquals(n, ((QuantizedShard) b.shard()).tensor());
        }
      }
    }
    Set<String> stored = JobTestSupport.storedTensors(out).keySet();
    assertTrue(stored.contains("../../esc/x._weight_qdata") && stored.contains("/abs/y._weight_scale"), stored::toString);
  }

  @Test
  void dumpDirectoryThatCannotBeMade() throws IOException {
    Path in = write(tmp.resolve("ok.safetensors"), model(21));
    Path file = Files.writeString(tmp.resolve("notes"), "mine\n");
    Run r = JobTestSupport.quantize(in, tmp.resolve("out"), "--recipe", "8da4w", "--dump-shards",
        file.resolve("dump").toString());
    assertRefusedAfterProgress(r, tmp.resolve("out"), "--dump-shards", file.resolve("dump").toString(), "cannot write");
    assertEquals("mine\n", Files.readString(file));
  }

  // ---- weight_map entries ---------------------------------------------------------------------

  @ParameterizedTest
  @ValueSource(strings = {"", ".", "..", "file:x", "file:model-00001-of-00001.safetensors", "hdfs://h/x", "/etc/passwd",
      "sub/model-00001-of-00001.safetensors", "sub\\\\model-00001-of-00001.safetensors", "../ckpt/model-00001-of-00001.safetensors",
      "model\\u0000.safetensors"})
  void weightMapEntryThatIsNotAFileName(String entry) throws IOException {
    Path dir = Files.createDirectory(tmp.resolve("ckpt"));
    write(dir.resolve("model-00001-of-00001.safetensors"), model(22));
    String good = "\"model-00001-of-00001.safetensors\"";
    Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"metadata\":{},\"weight_map\":{\"" + UP + "\":" + good
        + ",\"" + Q + "\":\"" + entry + "\",\"" + NORM + "\":" + good + "}}");
    assertRefused(JobTestSupport.quantize(dir, tmp.resolve("out"), "--recipe", "8da4w"), tmp.resolve("out"),
        "model.safetensors.index.json", Q, "not the name of a file");
    assertFalse(Files.exists(tmp.resolve("out")));
  }

  // ---- plan-time checks -----------------------------------------------------------------------

  /** A tensor with a zero dimension is copied as it is (it has no rows to quantize), wherever it lies in its file. */
  @Test
  void emptyTensorsAreCopied() throws IOException {
    Map<String, Tensor> m = new LinkedHashMap<>();
    m.put("a.empty.weight", Tensor.fromFloats(DType.BF16, new long[] {0, 64}, new float[0]));
    m.putAll(model(23));
    m.put("z.empty.weight", Tensor.fromFloats(DType.BF16, new long[] {64, 0}, new float[0]));
    Path in = write(tmp.resolve("empty.safetensors"), m);
    Run r = JobTestSupport.quantize(in, tmp.resolve("out"), "--recipe", "8da4w", "--dump-shards", tmp.resolve("dump").toString());
    assertEquals(0, r.status(), r::toString);
    assertTrue(r.err().contains("2 to quantize"), r::toString);
    Map<String, String> stored = JobTestSupport.storedTensors(tmp.resolve("out"));
    assertTrue(stored.get("a.empty.weight").startsWith("BF16[0, 64] "), stored::toString);
    assertTrue(stored.get("z.empty.weight").startsWith("BF16[64, 0] "), stored::toString);
    Run v = JobTestSupport.cli("verify", "--input", in.toString(), "--output", tmp.resolve("out").toString());
    assertEquals(0, v.status(), v::toString);
  }

  @Test
  void emptyTensorIncludedByName() throws IOException {
    Map<String, Tensor> m = model(24);
    m.put("z.empty.weight", Tensor.fromFloats(DType.BF16, new long[] {64, 0}, new float[0]));
    Path in = write(tmp.resolve("empty.safetensors"), m);
    assertRefused(JobTestSupport.quantize(in, tmp.resolve("out"), "--recipe", "8da4w", "--include", ".*\\.empty\\..*|.*proj.*"),
        tmp.resolve("out"), "empty.safetensors", "z.empty.weight", "no elements");
    assertFalse(Files.exists(tmp.resolve("out")));
  }

  @Test
  void storedKeyTakenByAnotherTensor() throws IOException {
    Map<String, Tensor> m = model(25);
    String taken = "model.layers.0.mlp.up_proj._weight_scale";
    m.put(taken, Tensor.fromFloats(DType.BF16, new long[] {64, 2}, floats(128, 25)));
    Path in = write(tmp.resolve("taken.safetensors"), m);
    assertRefused(JobTestSupport.quantize(in, tmp.resolve("out"), "--recipe", "8da4w"), tmp.resolve("out"),
        "taken.safetensors", "'" + UP + "'", "'" + taken + "'", "both be stored as");
    assertFalse(Files.exists(tmp.resolve("out")));
  }

  @Test
  void storedKeyTakenInAnotherFile() throws IOException {
    Path dir = Files.createDirectory(tmp.resolve("ckpt"));
    write(dir.resolve("model-00001-of-00002.safetensors"), Map.of("x._weight_qdata",
        Tensor.fromFloats(DType.BF16, new long[] {4, 64}, floats(256, 26))));
    write(dir.resolve("model-00002-of-00002.safetensors"), Map.of("x.weight",
        Tensor.fromFloats(DType.BF16, new long[] {4, 64}, floats(256, 27))));
    assertRefused(JobTestSupport.quantize(dir, tmp.resolve("out"), "--recipe", "8da4w"), tmp.resolve("out"),
        "model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors", "'x.weight'", "'x._weight_qdata'");
    assertFalse(Files.exists(tmp.resolve("out")));
  }

  @ParameterizedTest
  @ValueSource(strings = {"format", "tensor_names", "shardquant"})
  void tensorNamedLikeAMetadataEntry(String name) throws IOException {
    Map<String, Tensor> m = model(28);
    m.put(name, Tensor.fromFloats(DType.BF16, new long[] {2}, floats(2, 28)));
    Path in = write(tmp.resolve("meta.safetensors"), m);
    assertRefused(JobTestSupport.quantize(in, tmp.resolve("out"), "--recipe", "8da4w"), tmp.resolve("out"),
        "meta.safetensors", "'" + name + "'", "metadata");
    assertFalse(Files.exists(tmp.resolve("out")));
  }

  @Test
  void tensorWithAnEmptyName() throws IOException {
    Map<String, Tensor> m = model(29);
    m.put("", Tensor.fromFloats(DType.BF16, new long[] {2}, floats(2, 29)));
    Path in = write(tmp.resolve("unnamed.safetensors"), m);
    assertRefused(JobTestSupport.quantize(in, tmp.resolve("out"), "--recipe", "8da4w"), tmp.resolve("out"),
        "unnamed.safetensors", "empty name");
    assertFalse(Files.exists(tmp.resolve("out")));
  }

  // ---- Mistral's consolidated copy ------------------------------------------------------------

  @Test
  void consolidatedBesideModelWithTheSameTensors() throws IOException {
    Path dir = Files.createDirectory(tmp.resolve("mistral"));
    write(dir.resolve("model.safetensors"), model(30));
    write(dir.resolve("consolidated.safetensors"), model(30));
    assertRefused(JobTestSupport.quantize(dir, tmp.resolve("out"), "--recipe", "8da4w"), tmp.resolve("out"),
        "consolidated.safetensors", "model.safetensors", "model.safetensors.index.json");
    assertFalse(Files.exists(tmp.resolve("out")));
  }

  @Test
  void consolidatedBesideModelUnderOtherNames() throws IOException {
    Path dir = Files.createDirectory(tmp.resolve("mistral"));
    write(dir.resolve("model.safetensors"), model(31));
    Map<String, Tensor> mistral = new LinkedHashMap<>();
    mistral.put("layers.0.feed_forward.w3.weight", Tensor.fromFloats(DType.BF16, new long[] {64, 64}, floats(64 * 64, 31)));
    mistral.put("layers.0.attention.wq.weight", Tensor.fromFloats(DType.BF16, new long[] {32, 64}, floats(32 * 64, 32)));
    mistral.put("norm.weight", Tensor.fromFloats(DType.BF16, new long[] {64}, floats(64, 33)));
    write(dir.resolve("consolidated.safetensors"), mistral);
    assertRefused(JobTestSupport.quantize(dir, tmp.resolve("out"), "--recipe", "8da4w"), tmp.resolve("out"),
        "consolidated.safetensors", "model.safetensors", "model.safetensors.index.json");
    assertFalse(Files.exists(tmp.resolve("out")));
  }

  /** With an index the directory says which files are the weights: the consolidated copy is left behind. */
  @Test
  void consolidatedBesideAnIndex() throws IOException {
    Path dir = Files.createDirectory(tmp.resolve("mistral"));
    write(dir.resolve("model.safetensors"), model(34));
    write(dir.resolve("consolidated.safetensors"), model(34));
    Files.writeString(dir.resolve("model.safetensors.index.json"), "{\"metadata\":{},\"weight_map\":{\"" + UP
        + "\":\"model.safetensors\",\"" + Q + "\":\"model.safetensors\",\"" + NORM + "\":\"model.safetensors\"}}");
    Run r = JobTestSupport.quantize(dir, tmp.resolve("out"), "--recipe", "8da4w");
    assertEquals(0, r.status(), r::toString);
    assertTrue(r.err().contains("2 to quantize"), r::toString);
  }
}
