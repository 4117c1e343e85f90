package shardquant.kernels.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

class SafetensorsFileTest {
  @TempDir Path dir;

  @Test
  void writesAndReadsBackTensorsRowsAndMetadata() throws IOException {
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    float[] w = new float[6 * 5];
    for (int i = 0; i < w.length; i++) {
      w[i] = i * 0.25f - 3;
    }
    tensors.put("a.weight", Tensor.fromFloats(DType.BF16, new long[] {6, 5}, w));
    tensors.put("b.codes", Tensor.fromInts(DType.I8, new long[] {3}, new int[] {-128, 0, 127}));
    tensors.put("empty", Tensor.allocate(DType.F32, 0, 4));
    Path f = dir.resolve("m.safetensors");
    SafetensorsWriter.write(f, tensors, Map.of("format", "pt"));

    try (SafetensorsFile st = SafetensorsFile.open(f)) {
      assertEquals(List.of("a.weight", "b.codes", "empty"), st.entries().stream().map(TensorEntry::name).toList());
      assertEquals("pt", st.metadata().get("format"));
      assertTrue(st.read("a.weight").contentEquals(tensors.get("a.weight")));
      assertArrayEquals(new int[] {-128, 0, 127}, st.read("b.codes").toInts());
      Tensor rows = st.readRows("a.weight", 2, 4);
      assertArrayEquals(new long[] {2, 5}, rows.shape());
      assertEquals(w[10], rows.getFloat(0));
      assertEquals(w[19], rows.getFloat(9));
      assertEquals(0, st.read("empty").numel());
      assertEquals(0, (st.dataStart()) % 8, "header padded to 8 bytes");
    }
    try (Stream<Path> files = Files.list(dir)) {
      assertEquals(List.of(f), files.toList(), "no temporary file left behind");
    }
  }

  @Test
  void writerLeavesNothingUnderTheFinalNameWhenNotCommitted() throws IOException {
    Path f = dir.resolve("partial.safetensors");
    try (SafetensorsWriter w = SafetensorsWriter.create(f,
        List.of(new SafetensorsWriter.Declared("t", DType.F32, new long[] {4})), Map.of())) {
      w.write(ByteBuffer.allocate(8));
      IllegalStateException e = assertThrows(IllegalStateException.class, w::commit);
      assertTrue(e.getMessage().contains("8 of 16"), e.getMessage());
    }
    try (Stream<Path> files = Files.list(dir)) {
      assertEquals(0, files.count(), "neither the file nor its temporary may remain");
    }
  }

  @Test
  void writerRefusesMoreBytesThanDeclared() throws IOException {
    Path f = dir.resolve("x.safetensors");
    try (SafetensorsWriter w = SafetensorsWriter.create(f,
        List.of(new SafetensorsWriter.Declared("t", DType.U8, new long[] {2})), Map.of())) {
      assertThrows(IllegalStateException.class, () -> w.write(ByteBuffer.allocate(3)));
    }
    assertTrue(Files.notExists(f));
  }

  static Stream<Arguments> malformed() {
    String ok = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    return Stream.of(
        Arguments.of("too short", raw(new byte[5]), null, "too short"),
        Arguments.of("header length past end", withLength(1000, ok, 8), null, "runs past the end"),
        Arguments.of("absurd header length", withLength(-1, ok, 8), null, "not between"),
        Arguments.of("header not JSON", file("{\"t\": [", 0), null, "not valid JSON"),
        Arguments.of("header not an object", file("[1,2]", 0), null, "not a JSON object"),
        Arguments.of("duplicate key", file("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            + "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), null, "Duplicate field"),
        Arguments.of("unknown dtype", file("{\"t\":{\"dtype\":\"F3\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1), "t",
            "unknown dtype 'F3'"),
        Arguments.of("shape vs bytes", file("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "t",
            "needs 12 bytes"),
        Arguments.of("negative dim", file("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8), "t",
            "non-negative"),
        Arguments.of("offsets past data", file("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8),
            "t", "run past the end"),
        Arguments.of("decreasing offsets", file("{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8),
            "t", "increasing"),
        Arguments.of("overlap", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12), "b", "overlap tensor 'a'"),
        Arguments.of("gap", file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12), "b", "gap of 4"),
        Arguments.of("trailing bytes", file(ok, 12), null, "4 trailing bytes"),
        Arguments.of("truncated data", file(ok, 4), "t", "run past the end"),
        Arguments.of("metadata not strings", file("{\"__metadata__\":{\"k\":1}}", 0), null, "not a string"),
        Arguments.of("missing offsets", file("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8), "t", "data_offsets"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("malformed")
  void rejectsMalformedFilesNamingFileTensorAndProblem(String label, byte[] bytes, String tensor, String problem)
      throws IOException {
    Path f = dir.resolve("bad.safetensors");
    Files.write(f, bytes);
    SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> SafetensorsFile.open(f));
    assertTrue(e.getMessage().startsWith(f.toString()), e.getMessage());
    assertTrue(e.getMessage().contains(problem), label + ": " + e.getMessage());
    assertEquals(tensor, e.tensor(), e.getMessage());
    if (tensor != null) {
      assertTrue(e.getMessage().contains("tensor '" + tensor + "'"), e.getMessage());
    }
  }

  @Test
  void missingFileAndMissingTensorAreClearErrors() throws IOException {
    Path f = dir.resolve("nope.safetensors");
    assertTrue(assertThrows(SafetensorsFormatException.class, () -> SafetensorsFile.open(f)).getMessage()
        .contains("no such file"));
    Path g = dir.resolve("one.safetensors");
    SafetensorsWriter.write(g, Map.of("t", Tensor.allocate(DType.U8, 2)), Map.of());
    try (SafetensorsFile st = SafetensorsFile.open(g)) {
      SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> st.read("u"));
      assertEquals("u", e.tensor());
      assertThrows(SafetensorsFormatException.class, () -> st.readRows("t", 1, 3));
    }
  }

  @Test
  void readsRowRangesPastTwoGibibytesWithoutTouchingTheRest() throws IOException {
    long rows = 3L << 30; // a 3 GiB sparse file: no disk is used for the unwritten bytes
    String header = "{\"big\":{\"dtype\":\"U8\",\"shape\":[" + rows + "],\"data_offsets\":[0," + rows + "]}}";
    Path f = dir.resolve("big.safetensors");
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    try (java.io.RandomAccessFile raf = new java.io.RandomAccessFile(f.toFile(), "rw")) {
      raf.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).array());
      raf.write(h);
      raf.setLength(8 + h.length + rows);
      raf.seek(8 + h.length + rows - 3);
      raf.write(new byte[] {7, 8, 9});
    }
    try (SafetensorsFile st = SafetensorsFile.open(f)) {
      assertArrayEquals(new int[] {0, 7, 8, 9}, st.readRows("big", rows - 4, rows).toInts());
      SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> st.read("big"));
      assertTrue(e.getMessage().contains("row ranges"), e.getMessage());
    }
  }

  @Test
  void readBytesMapsAnyRunInsideATensorAndRefusesOthers() throws IOException {
    Path f = dir.resolve("runs.safetensors");
    SafetensorsWriter.write(f, Map.of("sz", Tensor.fromInts(DType.I16, new long[] {2, 3, 2}, new int[] {0, 1, 2, 3, 4, 5,
        6, 7, 8, 9, 10, 11})), Map.of());
    try (SafetensorsFile st = SafetensorsFile.open(f)) {
      ByteBuffer b = st.readBytes("sz", 14, 6);
      assertEquals(6, b.remaining());
      assertEquals(7, b.getShort(0));
      assertEquals(9, b.getShort(4));
      assertEquals(0, st.readBytes("sz", 24, 0).remaining());
      SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> st.readBytes("sz", 20, 6));
      assertTrue(e.getMessage().contains("sz") && e.getMessage().contains("[20, 26)") && e.getMessage().contains("24 bytes"),
          e.getMessage());
      assertThrows(SafetensorsFormatException.class, () -> st.readBytes("sz", -2, 2));
    }
  }

  private static byte[] raw(byte[] b) {
    return b;
  }

  private static byte[] file(String header, int dataBytes) {
    return withLength(header.getBytes(StandardCharsets.UTF_8).length, header, dataBytes);
  }

  private static byte[] withLength(long declaredLength, String header, int dataBytes) {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(declaredLength).put(h);
    return b.array();
  }
}
