package shardquant.kernels.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import shardquant.kernels.GoldenFiles;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * Each recipe torchao serializes, applied to the golden Llama-shaped model, gives torchao's stored
 * tensors and metadata byte for byte, whole and in the smallest row shards the recipe allows.
 */
public class RecipeFormatsGoldenTest {
  /** torchao's filter_fn in the golden generator: every nn.Linear but lm_head. */
  private static final Pattern LINEAR = Pattern.compile(".*(proj)\\.weight");

  @ParameterizedTest(name = "{0}")
  @CsvSource({
      "format_int4_tile_packed_to_4d_g128, int4-tile-packed, 128, 4",
      "format_8da4w_g32, 8da4w, 32, 4",
      "format_intx_w4_g32, intx-weight-only, 32, 4",
      "format_int8_weight_only, int8-weight-only, 0, 8",
      "format_int8_dyn_act_int8_weight, int8-dynamic, 0, 8"})
  void matchesTorchaoFile(String file, String recipe, int group, int bits) throws IOException {
    Path dir = GoldenFiles.dir("torchao-0.19-formats");
    QuantConfig c = new QuantConfig(Recipe.fromCliName(recipe), group, bits);
    int quantized = 0;
    try (SafetensorsFile input = SafetensorsFile.open(dir.resolve("input.safetensors"));
        SafetensorsFile expected = SafetensorsFile.open(dir.resolve(file + ".safetensors"))) {
      for (TensorEntry e : input.entries()) {
        if (!LINEAR.matcher(e.name()).matches()) {
          assertEquals(TorchaoMetadata.plain(), expected.metadata().get(e.name()), e.name());
          continue;
        }
        Tensor w = input.read(e.name());
        RecipeKernel k = c.recipe().kernel();
        assertNull(k.refusal(w.rows(), w.cols(), w.dtype(), c));
        String prefix = e.name().substring(0, e.name().length() - "weight".length()) + "_weight_";
        QuantStats whole = new QuantStats();
        QuantizedTensor q = k.quantize(w, c, GlobalStats.NONE, whole);
        assertEquals(expected.metadata().get(e.name()), TorchaoMetadata.quantized(c, w.shape(), w.dtype()), e.name());
        for (PartSpec spec : k.parts(w.rows(), w.cols(), w.dtype(), c)) {
          Tensor want = expected.read(prefix + spec.name());
          Tensor got = q.part(spec.name());
          assertEquals(want.dtype(), spec.dtype(), prefix + spec.name());
          assertTrue(Arrays.equals(want.shape(), spec.shape()), prefix + spec.name() + " shape " + Arrays.toString(spec.shape()));
          assertBytes(want, got, prefix + spec.name());
        }
        QuantStats sharded = new QuantStats();
        Map<String, Tensor> parts = RowShards.quantizeInShards(w, c, GlobalStats.NONE,
            k.rowAlignment(w.cols(), c), sharded);
        parts.forEach((name, t) -> assertBytes(q.part(name), t, "row-sharded " + prefix + name));
        assertEquals(whole, sharded, "verification sums must not depend on the sharding");
        assertTrue(whole.sqnrDb() > 10, e.name() + ": " + whole);
        quantized++;
      }
    }
    assertEquals(14, quantized);
  }

  @Test
  void assertBytesFailsOnEveryByteDifference() {
    // F32 NaNs differing in payload only, BF16 zeros differing in sign, and dtypes Java has no value for
    int[][] pairs = {{0x7fc00000, 0x7fc00001}, {0x0000, 0x8000}, {0x01, 0x02}, {0, 1}};
    DType[] dtypes = {DType.F32, DType.BF16, DType.F8_E4M3, DType.F64};
    for (int p = 0; p < pairs.length; p++) {
      DType d = dtypes[p];
      Tensor want = Tensor.allocate(d, 3);
      Tensor got = Tensor.allocate(d, 3);
      int at = 2 * d.byteSize(); // element 2
      for (int j = 0; j < Math.min(4, d.byteSize()); j++) {
        want.bytes().put(at + j, (byte) (pairs[p][0] >>> (8 * j)));
        got.bytes().put(at + j, (byte) (pairs[p][1] >>> (8 * j)));
      }
      assertBytes(want, want, d + " equal");
      AssertionError e = assertThrows(AssertionError.class, () -> assertBytes(want, got, d.toString()));
      assertTrue(e.getMessage().startsWith(d + ": first difference at flat index 2 (byte "), e.getMessage());
    }
  }

  /**
   * Same dtype, shape and bytes. The bytes decide, not the values: a NaN payload or a dtype without a Java
   * value (float8, float64) differs exactly when its bytes do. The message names the first differing
   * element with its bits and, where Java can show it, its value.
   */
  public static void assertBytes(Tensor want, Tensor got, String what) {
    assertEquals(want.dtype(), got.dtype(), what);
    assertTrue(Arrays.equals(want.shape(), got.shape()), what + ": shape " + Arrays.toString(got.shape()) + ", want "
        + Arrays.toString(want.shape()));
    int byteOffset = want.bytes().mismatch(got.bytes());
    if (byteOffset >= 0) {
      long i = byteOffset / want.dtype().byteSize();
      throw new AssertionError(what + ": first difference at flat index " + i + " (byte " + byteOffset + "): want "
          + show(want, i) + ", got " + show(got, i));
    }
  }

  /** Element {@code i} as its bytes in hex (little-endian, as stored) and its value where Java has one. */
  private static String show(Tensor t, long i) {
    int size = t.dtype().byteSize();
    ByteBuffer b = t.bytes();
    StringBuilder hex = new StringBuilder("0x");
    for (int j = size - 1; j >= 0; j--) {
      hex.append(String.format("%02x", b.get(b.position() + Math.toIntExact(i * size) + j) & 0xff));
    }
    try {
      return (t.dtype().isFloating() ? Float.toString(t.getFloat(i)) : Integer.toString(t.getInt(i))) + " (" + hex + ")";
    } catch (RuntimeException noJavaValue) {
      return hex.toString();
    }
  }
}
