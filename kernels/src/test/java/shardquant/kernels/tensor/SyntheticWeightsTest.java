package shardquant.kernels.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

class SyntheticWeightsTest {
  @Test
  void aBufferGetsTheSameStreamAsShortArraysAcrossChunkBoundaries() {
    int n = 3 * (1 << 16) + 5;
    short[] expected = new short[n];
    new SyntheticWeights(7, "w", 0.0f).fill(expected, n);

    Tensor t = SyntheticWeights.directBf16(7, "w", 1, n);
    assertTrue(t.bytes().isDirect());
    assertEquals(0, t.bytes().position());
    for (int i = 0; i < n; i++) {
      assertEquals(expected[i], t.bytes().getShort(2 * i), "element " + i);
    }

    // The stream continues where it stopped: two fills equal one.
    SyntheticWeights split = new SyntheticWeights(7, "w", 0.0f);
    ByteBuffer b = ByteBuffer.allocate(2 * n).order(ByteOrder.LITTLE_ENDIAN);
    split.fill(b.limit(10));
    split.fill(b.limit(2 * n));
    assertEquals(2 * n, b.position());
    for (int i = 0; i < n; i++) {
      assertEquals(expected[i], b.getShort(2 * i), "element " + i);
    }
  }
}
