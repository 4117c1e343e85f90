package shardquant.kernels.layout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.tensor.Tensor;

/**
 * The layouts against PyTorch 2.11's own output in the golden tinygemm_int4 files: from the golden codes
 * {@code q}, {@code scale} and {@code zero}, packing must give {@code packed_tc_ikt{2,4,8}}, {@code packed_cpu}
 * and {@code scale_and_zero} bit for bit, and unpacking them must give the inputs back.
 */
class Int4LayoutGoldenTest {
  /** The project's checkout sits next to {@code shared/}: module dir/../../shared/golden. */
  private static final Path GOLDEN = Path.of("").toAbsolutePath().resolve("../../shared/golden/torchao-0.19")
      .normalize();

  @TestFactory
  Stream<DynamicTest> tinygemmInt4Files() throws IOException {
    assertTrue(Files.isDirectory(GOLDEN), "golden vectors missing: no directory " + GOLDEN
        + " (the checkout must sit next to shared/golden)");
    List<Path> files = new ArrayList<>();
    try (DirectoryStream<Path> dir = Files.newDirectoryStream(GOLDEN, "tinygemm_int4_*.safetensors")) {
      dir.forEach(files::add);
    }
    files.sort(null);
    assertEquals(4, files.size(), "tinygemm_int4 golden files in " + GOLDEN + ": " + files);
    return files.stream().map(f -> DynamicTest.dynamicTest(f.getFileName().toString(), () -> check(f)));
  }

  private static void check(Path file) throws IOException {
    try (SafetensorsFile st = SafetensorsFile.open(file)) {
      Tensor q = st.read("q");
      int n = Math.toIntExact(q.rows());
      int k = Math.toIntExact(q.cols());
      int[] codes = q.toInts();

      for (int ikt : new int[] {2, 4, 8}) {
        Tensor expected = st.read("packed_tc_ikt" + ikt);
        assertArrayEquals(expected.shape(), TensorCoreTiledInt4Layout.packedShape(n, k, ikt), "shape, ikt " + ikt);
        int[] words = expected.toInts();
        assertArrayEquals(words, TensorCoreTiledInt4Layout.pack(codes, n, k, ikt), "packed_tc_ikt" + ikt);
        assertArrayEquals(codes, TensorCoreTiledInt4Layout.unpack(words, n, k, ikt), "unpack packed_tc_ikt" + ikt);
      }

      assertEquals(n % 16 == 0, st.has("packed_cpu"), "packed_cpu is present exactly where N % 16 == 0");
      if (st.has("packed_cpu")) {
        Tensor expected = st.read("packed_cpu");
        assertArrayEquals(new long[] {n, k / 2}, expected.shape(), "packed_cpu shape");
        byte[] bytes = toBytes(expected);
        assertArrayEquals(bytes, CpuInt4Layout.pack(codes, n, k), "packed_cpu");
        assertArrayEquals(codes, CpuInt4Layout.unpack(bytes, n, k), "unpack packed_cpu");
      }

      Tensor scale = st.read("scale");
      Tensor zero = st.read("zero");
      Tensor scaleAndZero = st.read("scale_and_zero");
      assertTrue(TinygemmScaleZero.pack(scale, zero).contentEquals(scaleAndZero), "scale_and_zero");
      assertTrue(TinygemmScaleZero.scale(scaleAndZero).contentEquals(scale), "scale from scale_and_zero");
      assertTrue(TinygemmScaleZero.zero(scaleAndZero).contentEquals(zero), "zero from scale_and_zero");
    }
  }

  private static byte[] toBytes(Tensor t) {
    ByteBuffer b = t.bytes();
    byte[] out = new byte[b.remaining()];
    b.get(out);
    return out;
  }
}
