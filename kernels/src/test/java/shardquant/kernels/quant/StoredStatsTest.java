package shardquant.kernels.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.select.Backends;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * The stats a backend returns with its bytes are the stats of the values those bytes dequantize to,
 * for every recipe and CPU backend: what {@code verify} relies on when it takes the re-quantization's
 * stats for the stored values' wherever the stored bytes equal the re-quantized ones. Compared as
 * verify compares a report (all but the clipped fraction, which the stored values cannot give).
 */
class StoredStatsTest {
  static Stream<Arguments> cases() {
    return RecipeShardingTest.cases().flatMap(a -> Stream.of(Backends.reference(), Backends.cpu()).map(b -> {
      Object[] args = a.get();
      return Arguments.of(args[0], args[1], args[2], args[3], b);
    }));
  }

  @ParameterizedTest(name = "{0} {1}x{2} {3} {4}")
  @MethodSource("cases")
  void statsAreThoseOfTheStoredValues(QuantConfig c, int rows, int cols, DType dtype, Backend backend) {
    Tensor w = RecipeShardingTest.weights(rows, cols, dtype, rows * 17L + cols);
    assertSameStats(c, w, backend, "gaussian with edge rows");
    if (c.recipe().groupwise() && c.recipe() != Recipe.NF4 && dtype == DType.BF16) {
      // a group spanning ±bf16 max: finite input whose dequantized values are not (counted apart; NF4 refuses it)
      float[] v = w.toFloats();
      v[0] = 3.3895314e38f;
      v[1] = -3.3895314e38f;
      v[cols] = 3.3895314e38f;
      assertSameStats(c, Tensor.fromFloats(dtype, w.shape(), v), backend, "±max");
    }
  }

  private static void assertSameStats(QuantConfig c, Tensor w, Backend backend, String what) {
    GlobalStats global = c.recipe() == Recipe.NF4
        ? new GlobalStats(Nf4Ref.scalerMean(w.dtype(), Nf4Ref.blockAbsmax(w))) : GlobalStats.NONE;
    QuantStats kernel = new QuantStats();
    QuantizedTensor q = backend.quantize(w, c, global, kernel);
    QuantStats stored = new QuantStats();
    // the stored parts alone, as verify reads them back
    QuantizedTensor parts = new QuantizedTensor(c, w.shape(), w.dtype(), q.parts());
    stored.addRows(w, parts.dequantize(w.dtype()), new long[Math.toIntExact(w.rows())], w.rows(), w.cols());
    String where = c + " " + List.of(w.shape()[0], w.shape()[1]) + " " + backend.nameFor(c.recipe()) + " " + what;
    assertEquals(stored.count(), kernel.count(), where + ": elements");
    assertEquals(stored.nonFinite(), kernel.nonFinite(), where + ": non-finite");
    assertEquals(stored.maxAbsError(), kernel.maxAbsError(), where + ": max abs error");
    assertEquals(stored.sqnrDb(), kernel.sqnrDb(), where + ": SQNR");
  }
}
