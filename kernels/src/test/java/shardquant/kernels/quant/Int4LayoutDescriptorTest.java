package shardquant.kernels.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.util.Random;
import org.junit.jupiter.api.Test;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/** The int4 layout descriptor agrees with the recipe table, and each layout's codes survive pack and unpack. */
class Int4LayoutDescriptorTest {
  @Test
  void recipesAndLayoutsMapBothWays() {
    for (Recipe r : Recipe.values()) {
      Int4Layout l = Int4Layout.of(r);
      if (l != null) {
        assertSame(r, l.recipe());
        assertEquals(l.torchaoType(), r.torchaoType());
        assertEquals(l.dataNames(), r.dataNames());
      }
    }
    assertSame(Int4Layout.TILE_PACKED, Int4Layout.of(Recipe.INT4_TILE_PACKED));
    assertSame(Int4Layout.CPU, Int4Layout.of(Recipe.INT4_CPU));
    assertNull(Int4Layout.of(Recipe.NF4));
    assertNull(Int4Layout.PLAIN.recipe());
  }

  /** Every layout's qdata packs to its declared part and back, at a size every layout stores unpadded. */
  @Test
  void packCodesMatchesDeclaredPartsAndRoundTrips() {
    int n = 64;
    int k = 1024;
    int g = 32;
    int[] codes = new Random(7).ints(n * k, 0, 16).toArray();
    for (Int4Layout l : Int4Layout.values()) {
      PartSpec qdata = l.parts(n, k, g).get(0);
      Tensor packed = l.packCodes(codes, n, k);
      assertEquals(qdata.dtype(), packed.dtype(), l.cliName());
      assertArrayEquals(qdata.shape(), packed.shape(), l.cliName());
      assertArrayEquals(codes, l.unpackCodes(packed, n, k), l.cliName());
      assertEquals(n, l.storedRows(n));
      assertEquals(k, l.storedCols(k));
    }
    assertEquals(DType.I8, Int4Layout.PLAIN.parts(n, k, g).get(0).dtype());
    assertEquals(8, Int4Layout.TILE_PACKED.storedRows(1));
    assertEquals(2048, Int4Layout.TILE_PACKED.storedCols(1025));
  }
}
