package shardquant.arrow;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.stream.Stream;
import org.apache.arrow.vector.LargeVarBinaryVector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

class TensorShardCodecTest extends AllocatorTest {

  static Stream<Arguments> shards() {
    Stream<TensorShard> cases = Stream.of(
        rows("model.layers.0.mlp.down_proj.weight", randomTensor(DType.BF16, 1, 10, 6), 4, 8),
        rows("lm_head.weight", randomTensor(DType.F32, 2, 3, 5), 0, 3),
        rows("codes", randomTensor(DType.I8, 3, 7, 3), 6, 7),
        rows("model.norm.weight", randomTensor(DType.F32, 4, 9), 0, 9),
        rows("empty.rows", randomTensor(DType.BF16, 5, 4, 8), 2, 2),
        rows("three.d", randomTensor(DType.I32, 6, 4, 2, 3), 1, 3),
        new TensorShard("scalar", new long[0], 0, 1, randomTensor(DType.F32, 7)));
    return cases.flatMap(s -> Stream.of(Route.values()).map(r -> Arguments.of(s, r)));
  }

  private static TensorShard rows(String name, Tensor whole, long from, long to) {
    return new TensorShard(name, whole.shape(), from, to, whole.rowSlice(from, to));
  }

  @ParameterizedTest(name = "{0} via {1}")
  @MethodSource("shards")
  void roundTripsAsOffHeapViews(TensorShard original, Route route) throws IOException {
    try (ShardBatch<TensorShard> batch = route.carry(ArrowShards.tensorShard(original, allocator),
        TensorShard.class, ArrowShards::readTensorShard, allocator, dir)) {
      TensorShard decoded = batch.shard();
      assertEquals(original.tensor(), decoded.tensor());
      assertArrayEquals(original.tensorShape(), decoded.tensorShape());
      assertEquals(original.rowStart(), decoded.rowStart());
      assertEquals(original.rowEnd(), decoded.rowEnd());
      assertTrue(decoded.data().contentEquals(original.data()), decoded.data() + " differs from " + original.data());
      assertTrue(decoded.data().bytes().isDirect(), "decoded data is on the heap");
      assertEquals(ByteOrder.LITTLE_ENDIAN, decoded.data().bytes().order());
      assertEquals(1, batch.root().getRowCount());
    }
  }

  @Test
  void decodedViewsAliasArrowMemory() {
    Tensor whole = randomTensor(DType.BF16, 11, 8, 4);
    try (ShardBatch<TensorShard> batch = ArrowShards.tensorShard(rows("w", whole, 0, 8), allocator)) {
      LargeVarBinaryVector data = (LargeVarBinaryVector) batch.root().getVector("data");
      byte flipped = (byte) ~batch.shard().data().bytes().get(5);
      data.getDataBuffer().setByte(5, flipped);
      assertEquals(flipped, batch.shard().data().bytes().get(5), "the decoded tensor is a copy, not a view");
    }
  }

  @Test
  void fillerWritesInPlaceOffHeap() throws IOException {
    Tensor whole = randomTensor(DType.BF16, 12, 10, 6);
    Tensor expected = whole.rowSlice(4, 8);
    ByteBuffer[] given = new ByteBuffer[1];
    try (ShardBatch<TensorShard> batch = ArrowShards.tensorShard("w", whole.shape(), 4, 8, DType.BF16, allocator,
        target -> {
          assertTrue(target.isDirect());
          assertEquals(ByteOrder.LITTLE_ENDIAN, target.order());
          assertEquals(expected.byteSize(), target.remaining());
          given[0] = target;
          target.put(expected.bytes());
        })) {
      TensorShard shard = batch.shard();
      assertTrue(shard.data().contentEquals(expected));
      assertArrayEquals(new long[] {4, 6}, shard.data().shape());
      given[0].put(0, (byte) ~given[0].get(0));
      assertEquals(given[0].get(0), shard.data().bytes().get(0), "the filled buffer is not the batch's memory");
    }
  }

  @Test
  void fillerReadsARowRangeFromAFilePositionally() throws IOException {
    Tensor whole = randomTensor(DType.F32, 13, 16, 5);
    long header = 100;
    Path file = dir.resolve("weights.bin");
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      ch.write(whole.bytes(), header);
    }
    long rowBytes = 5 * 4;
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ);
        ShardBatch<TensorShard> batch = ArrowShards.tensorShard("w", whole.shape(), 3, 11, DType.F32, allocator,
            target -> {
              long at = header + 3 * rowBytes;
              while (target.hasRemaining()) {
                int n = ch.read(target, at);
                if (n < 0) {
                  throw new IOException("unexpected end of file");
                }
                at += n;
              }
            })) {
      assertTrue(batch.shard().data().contentEquals(whole.rowSlice(3, 11)));
    }
  }

  @Test
  void fillerThatStopsShortFailsWithoutLeaking() {
    IOException e = assertThrows(IOException.class, () -> ArrowShards.tensorShard("w", new long[] {4, 4}, 0, 2,
        DType.I8, allocator, target -> target.put(new byte[3])));
    assertTrue(e.getMessage().contains("left 5 of 8 bytes unfilled"), e.getMessage());
    assertTrue(e.getMessage().contains("'w'"), e.getMessage());
  }

  @Test
  void fillerErrorsPropagateWithoutLeaking() {
    IOException cause = new IOException("connection reset");
    IOException e = assertThrows(IOException.class, () -> ArrowShards.tensorShard("w", new long[] {4, 4}, 0, 2,
        DType.I8, allocator, target -> {
          throw cause;
        }));
    assertEquals(cause, e);
  }

  @Test
  void fillerArgumentsAreChecked() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ArrowShards.tensorShard("w",
        new long[] {4, 4}, 2, 5, DType.I8, allocator, target -> {}));
    assertTrue(e.getMessage().contains("rows [2, 5)") && e.getMessage().contains("4 rows"), e.getMessage());
  }

  @Test
  void shardsCheckTheirShape() {
    Tensor whole = randomTensor(DType.F32, 14, 6, 3);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new TensorShard("w", whole.shape(), 0, 2, whole.rowSlice(0, 3)));
    assertTrue(e.getMessage().contains("[2, 3]"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new TensorShard("w", whole.shape(), 4, 7, whole.rowSlice(0, 3)));
    assertThrows(IllegalArgumentException.class, () -> new TensorShard("", whole.shape(), 0, 6, whole));
  }

  @Test
  void closingTwiceIsSafeAndClosedBatchesRefuseAccess() {
    ShardBatch<TensorShard> batch = ArrowShards.tensorShard(rows("w", randomTensor(DType.I8, 15, 4, 4), 0, 4),
        allocator);
    assertTrue(allocator.getAllocatedMemory() > 0);
    batch.close();
    batch.close();
    assertEquals(0, allocator.getAllocatedMemory());
    assertThrows(IllegalStateException.class, batch::shard);
    assertThrows(IllegalStateException.class, batch::root);
  }

  @Test
  void ipcFileReplacesAtomicallyAndLeavesNoTemporaryFile() throws IOException {
    Path file = dir.resolve("out/shard.arrow");
    for (long seed = 0; seed < 2; seed++) {
      try (ShardBatch<TensorShard> batch = ArrowShards.tensorShard(rows("w", randomTensor(DType.U8, seed, 4, 4), 0,
          4), allocator)) {
        ArrowShards.writeIpcFile(batch, file);
      }
    }
    try (Stream<Path> files = Files.list(file.getParent())) {
      assertEquals(java.util.List.of(file), files.toList());
    }
    try (ShardBatch<?> read = ArrowShards.readIpcFile(file, allocator)) {
      assertTrue(((TensorShard) read.shard()).data().contentEquals(randomTensor(DType.U8, 1, 4, 4)));
    }
  }
}
