package shardquant.kernels.golden;

import java.io.IOException;
import shardquant.kernels.quant.Nf4Ref;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;

/**
 * Golden kind {@code nf4}: torchao's {@code to_nf4(w, 64, 256)} and {@code get_original_weight()} on CPU.
 *
 * <p>Two runs. With torchao's own {@code scaler_mean} passed in, every part and {@code dq} must be exact:
 * everything downstream of the mean is element-wise or a max. With the project's own mean (a float32
 * sum, whose order the golden README lets differ by one ulp), the mean must be within one ulp; if it
 * is equal, the whole result must be the first run's, else at least 99.9% of the 4-bit codes must be
 * torchao's.
 */
public final class Nf4Kind implements GoldenKind {
  private static final double MIN_CODES_EQUAL = 0.999;

  @Override
  public String kind() {
    return "nf4";
  }

  @Override
  public void check(GoldenCase c, GoldenReport r) throws IOException {
    int blockSize = c.intParam("block_size");
    int scalerBlockSize = c.intParam("scaler_block_size");
    if (blockSize != Nf4Ref.BLOCK_SIZE || scalerBlockSize != Nf4Ref.SCALER_BLOCK_SIZE) {
      r.fail("shardquant's NF4 is torchao's default block_size " + Nf4Ref.BLOCK_SIZE + ", scaler_block_size "
          + Nf4Ref.SCALER_BLOCK_SIZE + "; case has " + blockSize + ", " + scalerBlockSize);
      return;
    }
    Tensor w = c.tensor("w");
    Tensor expectedMean = c.tensor("scaler_mean");

    QuantizedTensor given = Nf4Ref.quantize(w, expectedMean.getFloat(0));
    r.exact("quantized_data", given.part("quantized_data"));
    r.exact("quantized_scalers", given.part("quantized_scalers"));
    r.exact("quantization_factor", given.part("quantization_factor"));
    r.exact("nf4", given.part("nf4"));
    r.exact("dq", Nf4Ref.dequantize(given));

    QuantizedTensor own = Nf4Ref.quantize(w);
    // torchao's mean is a 0-dim tensor; the golden file stores it with shape [1].
    r.withinUlps("scaler_mean", own.part("scaler_mean").reshape(1), 1);
    if (Float.floatToRawIntBits(Nf4Ref.scalerMean(own)) == Float.floatToRawIntBits(expectedMean.getFloat(0))) {
      if (!own.contentEquals(given)) {
        r.fail("own scaler_mean equals torchao's but quantizing with it differs from quantizing with torchao's");
      }
    } else {
      checkCodes(c.tensor("quantized_data"), own.part("quantized_data"), r);
    }
  }

  /** Compares the 4-bit codes, two per byte, since the README's 99.9% rule counts codes, not bytes. */
  private static void checkCodes(Tensor expected, Tensor actual, GoldenReport r) {
    long equal = 0;
    for (long j = 0; j < expected.numel(); j++) {
      int x = expected.getInt(j) ^ actual.getInt(j);
      equal += ((x >> 4) == 0 ? 1 : 0) + ((x & 0xF) == 0 ? 1 : 0);
    }
    long codes = 2 * expected.numel();
    if (equal < MIN_CODES_EQUAL * codes) {
      r.fail("quantized_data with own scaler_mean: " + (codes - equal) + " of " + codes
          + " codes differ from torchao's, more than " + (1 - MIN_CODES_EQUAL) * 100 + "% allowed");
    }
  }
}
