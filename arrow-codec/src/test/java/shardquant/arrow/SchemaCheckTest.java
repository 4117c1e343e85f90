package shardquant.arrow;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowFileWriter;
import org.apache.arrow.vector.ipc.ArrowStreamWriter;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.Test;
import shardquant.kernels.dtype.DType;

/** Readers refuse batches of another kind, another schema version, or no shardquant schema at all. */
class SchemaCheckTest extends AllocatorTest {

  @Test
  void schemasCarryKindAndVersion() {
    assertEquals(Map.of("shardquant.schema_version", "1", "shardquant.kind", "tensor_shard"),
        ArrowShards.tensorShardSchema().getCustomMetadata());
    assertEquals(Map.of("shardquant.schema_version", "1", "shardquant.kind", "quantized_shard"),
        ArrowShards.quantizedShardSchema().getCustomMetadata());
  }

  @Test
  void tensorReaderRefusesAQuantizedShard() {
    byte[] quantized = stream(ArrowShards.quantizedShard(QuantizedShardCodecTest.sample(), allocator));
    String msg = assertThrows(IllegalArgumentException.class,
        () -> ArrowShards.readTensorShard(quantized, allocator)).getMessage();
    assertTrue(msg.contains("expected shardquant.kind=tensor_shard"), msg);
    assertTrue(msg.contains("found shardquant.kind=quantized_shard"), msg);
  }

  @Test
  void quantizedReaderRefusesATensorShard() {
    byte[] tensor = stream(tensorBatch());
    String msg = assertThrows(IllegalArgumentException.class,
        () -> ArrowShards.readQuantizedShard(tensor, allocator)).getMessage();
    assertTrue(msg.contains("expected shardquant.kind=quantized_shard"), msg);
    assertTrue(msg.contains("found shardquant.kind=tensor_shard"), msg);
  }

  @Test
  void readersRefuseAnotherSchemaVersion() throws IOException {
    byte[] v2 = relabeled(Map.of("shardquant.schema_version", "2", "shardquant.kind", "tensor_shard"));
    String msg = assertThrows(IllegalArgumentException.class, () -> ArrowShards.readTensorShard(v2, allocator))
        .getMessage();
    assertTrue(msg.contains("shardquant.schema_version=1"), msg);
    assertTrue(msg.contains("found") && msg.contains("shardquant.schema_version=2"), msg);
  }

  @Test
  void readersRefuseArrowWithoutShardquantMetadata() throws IOException {
    byte[] plain = relabeled(Map.of());
    String msg = assertThrows(IllegalArgumentException.class, () -> ArrowShards.readTensorShard(plain, allocator))
        .getMessage();
    assertTrue(msg.contains("found shardquant.kind=null"), msg);
  }

  @Test
  void readersRefuseBytesThatAreNotArrow() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> ArrowShards.readTensorShard("not arrow at all, just some text".getBytes(), allocator));
    assertTrue(e.getMessage().contains("Arrow IPC stream"), e.getMessage());
  }

  @Test
  void readersRefuseATruncatedStreamWithoutLeaking() {
    byte[] whole = stream(tensorBatch()); // its last 8 bytes are the optional end-of-stream marker
    for (int len : new int[] {whole.length / 3, whole.length / 2, whole.length - 100, whole.length - 9}) {
      byte[] cut = java.util.Arrays.copyOf(whole, len);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> ArrowShards.readTensorShard(cut, allocator), "stream cut to " + len + " of " + whole.length);
      assertTrue(e.getMessage().contains("Arrow IPC stream"), e.getMessage());
    }
  }

  @Test
  void corruptStreamsFailClearlyWithoutLeaking() {
    byte[] whole = stream(ArrowShards.quantizedShard(QuantizedShardCodecTest.sample(), allocator));
    java.util.Random random = new java.util.Random(42);
    for (int i = 0; i < 500; i++) {
      byte[] bad = whole.clone();
      for (int k = 0; k < 3; k++) {
        bad[random.nextInt(bad.length)] = (byte) random.nextInt();
      }
      try (ShardBatch<QuantizedShard> batch = ArrowShards.readQuantizedShard(bad, allocator)) {
        batch.shard(); // a flipped data byte still decodes; anything else must fail as below
      } catch (IllegalArgumentException e) {
        assertTrue(e.getMessage().startsWith("Arrow IPC stream of " + whole.length + " bytes"), e.getMessage());
      }
      assertEquals(0, allocator.getAllocatedMemory(), "leak after corruption " + i);
    }
  }

  @Test
  void fileReaderSaysWhichFileIsMissingOrNotArrow() throws IOException {
    Path missing = dir.resolve("missing.arrow");
    assertThrows(java.nio.file.NoSuchFileException.class, () -> ArrowShards.readIpcFile(missing, allocator));
    Path text = dir.resolve("text.arrow");
    java.nio.file.Files.writeString(text, "this is not an Arrow file, only some words");
    Exception e = assertThrows(Exception.class, () -> ArrowShards.readIpcFile(text, allocator));
    assertTrue(e instanceof IOException || e instanceof IllegalArgumentException, e.toString());
    assertTrue(e.getMessage().contains(text.toString()), e.getMessage());
  }

  @Test
  void fileReaderRefusesAnUnknownKind() throws IOException {
    Path file = dir.resolve("other.arrow");
    try (ShardBatch<TensorShard> batch = tensorBatch();
        FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        ArrowFileWriter writer = new ArrowFileWriter(withMetadata(batch,
            Map.of("shardquant.schema_version", "1", "shardquant.kind", "embedding_table")), null, ch)) {
      writer.start();
      writer.writeBatch();
      writer.end();
    }
    String msg = assertThrows(IllegalArgumentException.class, () -> ArrowShards.readIpcFile(file, allocator))
        .getMessage();
    assertTrue(msg.contains(file.toString()), msg);
    assertTrue(msg.contains("found shardquant.kind=embedding_table"), msg);
  }

  private ShardBatch<TensorShard> tensorBatch() {
    return ArrowShards.tensorShard(new TensorShard("w", new long[] {4, 2}, 0, 4, randomTensor(DType.BF16, 31, 4, 2)),
        allocator);
  }

  /** A valid tensor-shard stream whose schema metadata is replaced. */
  private byte[] relabeled(Map<String, String> metadata) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (ShardBatch<TensorShard> batch = tensorBatch();
        ArrowStreamWriter writer = new ArrowStreamWriter(withMetadata(batch, metadata), null,
            Channels.newChannel(bytes))) {
      writer.start();
      writer.writeBatch();
      writer.end();
    }
    return bytes.toByteArray();
  }

  /** A second root over the batch's vectors (the batch still owns them) with other schema metadata. */
  private static VectorSchemaRoot withMetadata(ShardBatch<?> batch, Map<String, String> metadata) {
    VectorSchemaRoot root = batch.root();
    return new VectorSchemaRoot(new Schema(root.getSchema().getFields(), metadata), root.getFieldVectors(),
        root.getRowCount());
  }

  private static byte[] stream(ShardBatch<?> batch) {
    try (batch) {
      return ArrowShards.toIpcStream(batch);
    }
  }
}
