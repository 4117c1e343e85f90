package shardquant.kernels.safetensors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * The header is read as strictly as the Rust reference reads it ({@code safetensors/src/tensor.rs},
 * {@code read_metadata}): a file it refuses is refused here with the file named, one it loads is read.
 */
class SafetensorsHeaderTest {
  private static final String T = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";

  @TempDir Path dir;

  // ---- refused --------------------------------------------------------------------------------

  @Test
  void trailingGarbageAfterTheJsonObject() throws IOException {
    String problem = refused(header(T + "xyz     "), 4, null);
    assertTrue(problem.contains("8 bytes after the header's JSON object, from header byte 54 (0x78), are not"
        + " whitespace padding"), problem);
  }

  @Test
  void secondJsonValueAfterTheObject() throws IOException {
    String problem = refused(header(T + " {}"), 4, null);
    assertTrue(problem.contains("from header byte 55 (0x7b)"), problem);
  }

  @Test
  void nulPadding() throws IOException {
    String problem = refused(header(T + "\0\0\0\0"), 4, null);
    assertTrue(problem.contains("header byte 54 is a NUL byte"), problem);
  }

  @Test
  void nulInsideATensorName() throws IOException {
    String problem = refused(header("{\"a\0b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"), 4, null);
    assertTrue(problem.contains("header byte 3 is a NUL byte"), problem);
  }

  /** A lone continuation byte, a cut-off sequence, an overlong '/', a UTF-16 surrogate, past U+10FFFF. */
  @ParameterizedTest
  @ValueSource(strings = {"80", "c328", "c0af", "eda080", "f4908080"})
  void invalidUtf8InATensorName(String hex) throws IOException {
    byte[] bad = java.util.HexFormat.of().parseHex(hex);
    ByteArrayOutputStream h = new ByteArrayOutputStream();
    h.writeBytes("{\"w".getBytes(StandardCharsets.UTF_8));
    h.writeBytes(bad);
    h.writeBytes("\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".getBytes(StandardCharsets.UTF_8));
    String problem = refused(h.toByteArray(), 4, null);
    assertTrue(problem.contains("header is not valid UTF-8: byte 0x" + hex.substring(0, 2) + " at header byte 3"), problem);
  }

  @Test
  void byteOrderMark() throws IOException {
    ByteArrayOutputStream h = new ByteArrayOutputStream();
    h.writeBytes(new byte[] {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF});
    h.writeBytes(header(T));
    assertTrue(refused(h.toByteArray(), 4, null).contains("byte order mark"));
  }

  @Test
  void offsetsPastTwoToTheSixtyFour() throws IOException {
    String problem = refused(header("{\"t\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,18446744073709551615]}}"),
        4, "t");
    assertTrue(problem.contains("data_offsets [0, 18446744073709551615] run past the end of the data section (4 bytes"),
        problem);
  }

  /** Read as longs, [2^64, 2^64 + 4] would wrap to [0, 4] and fit the tensor exactly. */
  @Test
  void offsetsThatWrapModuloTwoToTheSixtyFour() throws IOException {
    String problem = refused(header("{\"t\":{\"dtype\":\"U8\",\"shape\":[4],"
        + "\"data_offsets\":[18446744073709551616,18446744073709551620]}}"), 4, "t");
    assertTrue(problem.contains("[18446744073709551616, 18446744073709551620] run past the end"), problem);
  }

  /** Read as longs, 2^63 would wrap to a negative start. */
  @Test
  void offsetsPastTwoToTheSixtyThree() throws IOException {
    String problem = refused(header("{\"t\":{\"dtype\":\"U8\",\"shape\":[0],"
        + "\"data_offsets\":[9223372036854775808,9223372036854775808]}}"), 0, "t");
    assertTrue(problem.contains("[9223372036854775808, 9223372036854775808] run past the end"), problem);
  }

  @Test
  void negativeOffsets() throws IOException {
    String problem = refused(header("{\"t\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-4,0]}}"), 4, "t");
    assertTrue(problem.contains("[-4, 0] are not an increasing range of non-negative integers"), problem);
  }

  @Test
  void shapeWhoseByteCountOverflows() throws IOException {
    String problem = refused(header("{\"t\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],"
        + "\"data_offsets\":[0,4]}}"), 4, "t");
    assertTrue(problem.contains("overflows a 64-bit byte count"), problem);
  }

  /** The reference's MAX_HEADER_SIZE is 100_000_000 bytes, not 100 MiB. */
  @Test
  void headerLengthOverOneHundredMillionBytes() throws IOException {
    Path p = dir.resolve("long.safetensors");
    Files.write(p, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(100_000_001).array());
    SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> SafetensorsFile.open(p));
    assertTrue(e.getMessage().startsWith(p + ": header length 100000001 is not between 2 and 100000000 bytes"),
        e.getMessage());
  }

  @ParameterizedTest
  @ValueSource(strings = {"F4", "F6_E2M3", "F6_E3M2"})
  void subByteDtypesAreRefusedByName(String dtype) throws IOException {
    String problem = refused(header("{\"model.layers.0.mlp.up_proj.weight\":{\"dtype\":\"" + dtype + "\",\"shape\":[2,8],"
        + "\"data_offsets\":[0,8]}}"), 8, "model.layers.0.mlp.up_proj.weight");
    assertTrue(problem.contains("dtype " + dtype + " packs elements narrower than a byte"), problem);
  }

  // ---- read -----------------------------------------------------------------------------------

  /** serde_json::from_str skips JSON whitespace after the value, so the reference loads these files. */
  @ParameterizedTest
  @ValueSource(strings = {"", "        ", "\n", "\r\n", "\t  "})
  void whitespacePaddingIsRead(String padding) throws IOException {
    try (SafetensorsFile f = SafetensorsFile.open(file(header(T + padding), 4))) {
      assertEquals(List.of("t"), f.entries().stream().map(TensorEntry::name).toList());
    }
  }

  @Test
  void nonAsciiNamesAreRead() throws IOException {
    String name = "blöcke.0.权重.weight";
    Path p = dir.resolve("names.safetensors");
    SafetensorsWriter.write(p, Map.of(name, Tensor.allocate(DType.BF16, 2, 2)), Map.of());
    try (SafetensorsFile f = SafetensorsFile.open(p)) {
      assertEquals(8, f.entry(name).byteSize());
    }
  }

  @ParameterizedTest
  @EnumSource(DType.class)
  void everyDtypeIsReadWithItsByteSize(DType dtype) throws IOException {
    long bytes = 6L * dtype.byteSize();
    String h = "{\"t\":{\"dtype\":\"" + dtype.safetensorsName() + "\",\"shape\":[3,2],\"data_offsets\":[0," + bytes + "]}}";
    try (SafetensorsFile f = SafetensorsFile.open(file(header(h), (int) bytes))) {
      assertEquals(dtype, f.entry("t").dtype());
      assertEquals(2L * dtype.byteSize(), f.entry("t").rowBytes());
    }
  }

  // ---- helpers --------------------------------------------------------------------------------

  private static byte[] header(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }

  private Path file(byte[] header, int dataBytes) throws IOException {
    Path p = dir.resolve("odd.safetensors");
    ByteBuffer b = ByteBuffer.allocate(8 + header.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(header.length).put(header);
    Files.write(p, b.array());
    return p;
  }

  /** Opening fails with a message that starts with the file and names {@code tensor}; returns the message. */
  private String refused(byte[] header, int dataBytes, String tensor) throws IOException {
    Path p = file(header, dataBytes);
    SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> SafetensorsFile.open(p));
    assertTrue(e.getMessage().startsWith(p + ": "), e.getMessage());
    assertEquals(p.toString(), e.file());
    assertEquals(tensor, e.tensor(), e.getMessage());
    if (tensor != null) {
      assertTrue(e.getMessage().contains("tensor '" + tensor + "'"), e.getMessage());
    }
    return e.getMessage();
  }
}
