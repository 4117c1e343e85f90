package shardquant.kernels.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import org.junit.jupiter.api.Test;
import shardquant.kernels.dtype.DType;

class TensorTest {
  @Test
  void resizedZeroPadsAndCropsBack() {
    Tensor t = Tensor.fromFloats(DType.BF16, new long[] {2, 3}, new float[] {1, 2, 3, 4, 5, 6});
    Tensor padded = t.resized(3, 4);
    assertArrayEquals(new float[] {1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0, 0}, padded.toFloats());
    assertArrayEquals(t.toFloats(), padded.resized(2, 3).toFloats());
    assertArrayEquals(new float[] {1, 2}, t.resized(1, 2).toFloats());
    assertSame(t, t.resized(2, 3));
  }
}
