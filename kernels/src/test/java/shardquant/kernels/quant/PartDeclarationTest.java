package shardquant.kernels.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/** A recipe's parts are declared once, in its class: the table's names and every allocation come from there. */
class PartDeclarationTest {
  @Test
  void dataNamesAreTheDeclaredParts() {
    for (Recipe r : Recipe.values()) {
      QuantConfig c = QuantConfig.of(r);
      long rows = 64;
      long cols = 1024;
      List<String> declared = r.kernel().parts(rows, cols, DType.BF16, c).stream().map(PartSpec::name).toList();
      assertEquals(declared, r.dataNames(), r.cliName());
    }
  }

  @Test
  void allocateGivesTheDeclaredDtypesAndShapes() {
    Tensor rows = Tensor.allocate(DType.BF16, 64, 1024);
    for (Recipe r : Recipe.values()) {
      QuantConfig c = QuantConfig.of(r);
      QuantizedTensor q = QuantizedTensor.allocate(c, rows);
      for (PartSpec p : r.kernel().parts(64, 1024, DType.BF16, c)) {
        Tensor t = q.part(p.name());
        assertEquals(p.dtype(), t.dtype(), r.cliName() + " " + p.name());
        assertEquals(Arrays.toString(p.shape()), Arrays.toString(t.shape()), r.cliName() + " " + p.name());
      }
    }
  }

  @Test
  void ofChecksEachPartAgainstTheDeclaration() {
    QuantConfig c = QuantConfig.of(Recipe.INT8_WEIGHT_ONLY);
    Map<String, Tensor> parts = new LinkedHashMap<>();
    parts.put("qdata", Tensor.allocate(DType.I8, 4, 64));
    parts.put("scale", Tensor.allocate(DType.BF16, 4, 1)); // declared float32
    parts.put("zero_point", Tensor.allocate(DType.I8, 4, 1));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> QuantizedTensor.of(c, new long[] {4, 64}, DType.BF16, parts));
    assertEquals("scale must be float32[4, 1], got " + parts.get("scale"), e.getMessage());
    parts.put("scale", Tensor.allocate(DType.F32, 4, 1));
    QuantizedTensor q = QuantizedTensor.of(c, new long[] {4, 64}, DType.BF16, parts);
    assertEquals(Recipe.INT8_WEIGHT_ONLY.dataNames(), List.copyOf(q.parts().keySet())); // the declared order
  }

  @Test
  void onlyRecipesThatDeclareOneHaveAFirstPass() {
    for (Recipe r : Recipe.values()) {
      assertEquals(r == Recipe.NF4, r.firstPass().isPresent(), r.cliName());
    }
  }
}
