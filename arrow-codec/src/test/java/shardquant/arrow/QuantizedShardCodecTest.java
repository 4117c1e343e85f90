package shardquant.arrow;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import shardquant.kernels.dtype.DType;

class QuantizedShardCodecTest extends AllocatorTest {

  /** Rows [8, 16) of a 32 x 2048 weight: parts of several dtypes and ranks, one empty, one replicated. */
  static QuantizedShard sample() {
    return new QuantizedShard("model.layers.3.self_attn.q_proj.weight", 8, 16, List.of(
        new ShardPart("model.layers.3.self_attn.q_proj._weight_qdata", 0, randomTensor(DType.I32, 21, 1, 2, 32, 4)),
        new ShardPart("model.layers.3.self_attn.q_proj._weight_scale_and_zero", 1,
            randomTensor(DType.BF16, 22, 16, 8, 2)),
        new ShardPart("model.layers.3.self_attn.q_proj._weight_scale", 0, randomTensor(DType.F32, 23, 8, 1)),
        new ShardPart("model.layers.3.self_attn.q_proj._weight_zero_point", 0, randomTensor(DType.I8, 24, 8, 0)),
        new ShardPart("model.layers.3.self_attn.q_proj._weight_codes", 0, randomTensor(DType.U8, 25, 8, 1024)),
        new ShardPart("model.layers.3.self_attn.q_proj._weight_nf4", -1, randomTensor(DType.F32, 26, 16))));
  }

  @ParameterizedTest
  @EnumSource(Route.class)
  void roundTripsEveryPartInOrderAsOffHeapViews(Route route) throws IOException {
    QuantizedShard original = sample();
    try (ShardBatch<QuantizedShard> batch = route.carry(ArrowShards.quantizedShard(original, allocator),
        QuantizedShard.class, ArrowShards::readQuantizedShard, allocator, dir)) {
      QuantizedShard decoded = batch.shard();
      assertEquals(original.tensor(), decoded.tensor());
      assertEquals(original.rowStart(), decoded.rowStart());
      assertEquals(original.rowEnd(), decoded.rowEnd());
      assertEquals(original.parts().size(), decoded.parts().size());
      assertEquals(original.parts().size(), batch.root().getRowCount());
      for (int i = 0; i < original.parts().size(); i++) {
        ShardPart want = original.parts().get(i);
        ShardPart got = decoded.parts().get(i);
        assertEquals(want.key(), got.key());
        assertEquals(want.rowDim(), got.rowDim(), want.key());
        assertTrue(got.data().contentEquals(want.data()), want.key() + ": " + got.data() + " vs " + want.data());
        assertTrue(got.data().bytes().isDirect(), want.key() + " decoded onto the heap");
      }
    }
  }

  @Test
  void aCopiedTensorIsOnePartUnderItsOwnName() throws IOException {
    QuantizedShard copied = new QuantizedShard("model.embed_tokens.weight", 0, 4, List.of(
        new ShardPart("model.embed_tokens.weight", 0, randomTensor(DType.BF16, 27, 4, 64))));
    try (ShardBatch<QuantizedShard> batch = ArrowShards.readQuantizedShard(
        toStream(ArrowShards.quantizedShard(copied, allocator)), allocator)) {
      assertEquals("model.embed_tokens.weight", batch.shard().parts().get(0).key());
      assertTrue(batch.shard().parts().get(0).data().contentEquals(copied.parts().get(0).data()));
    }
  }

  @Test
  void partsAndShardsCheckTheirArguments() {
    IllegalArgumentException rowDim = assertThrows(IllegalArgumentException.class,
        () -> new ShardPart("k", 2, randomTensor(DType.I8, 1, 4, 4)));
    assertTrue(rowDim.getMessage().contains("rowDim 2"), rowDim.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new ShardPart("k", -2, randomTensor(DType.I8, 1, 4)));
    assertThrows(IllegalArgumentException.class, () -> new ShardPart("", 0, randomTensor(DType.I8, 1, 4)));
    assertThrows(IllegalArgumentException.class, () -> new QuantizedShard("t", 0, 4, List.of()));
    assertThrows(IllegalArgumentException.class, () -> new QuantizedShard("t", 5, 4, sample().parts()));
    ShardPart p = new ShardPart("k", 0, randomTensor(DType.I8, 1, 4));
    IllegalArgumentException dup = assertThrows(IllegalArgumentException.class,
        () -> new QuantizedShard("t", 0, 4, List.of(p, p)));
    assertTrue(dup.getMessage().contains("two parts named 'k'"), dup.getMessage());
  }

  private static byte[] toStream(ShardBatch<?> batch) {
    try (batch) {
      return ArrowShards.toIpcStream(batch);
    }
  }
}
