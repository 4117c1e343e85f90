package shardquant.kernels.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.regex.Pattern;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import shardquant.kernels.GoldenFiles;
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

  public static void assertBytes(Tensor want, Tensor got, String what) {
    assertEquals(want.dtype(), got.dtype(), what);
    assertTrue(Arrays.equals(want.shape(), got.shape()), what + ": shape " + Arrays.toString(got.shape()) + ", want "
        + Arrays.toString(want.shape()));
    if (!want.bytes().equals(got.bytes())) {
      for (long i = 0; i < want.numel(); i++) {
        boolean same = want.dtype().isFloating()
            ? Float.floatToRawIntBits(want.getFloat(i)) == Float.floatToRawIntBits(got.getFloat(i))
            : want.getInt(i) == got.getInt(i);
        if (!same) {
          throw new AssertionError(what + ": first difference at flat index " + i + ": want "
              + (want.dtype().isFloating() ? want.getFloat(i) : want.getInt(i)) + ", got "
              + (got.dtype().isFloating() ? got.getFloat(i) : got.getInt(i)));
        }
      }
    }
  }
}
