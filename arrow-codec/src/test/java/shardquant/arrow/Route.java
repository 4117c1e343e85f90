package shardquant.arrow;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.function.BiFunction;
import org.apache.arrow.memory.BufferAllocator;

/** How a batch reaches its reader: not at all, through Spark as an IPC stream, or as an IPC file. */
enum Route {
  BATCH, STREAM, FILE;

  /** Sends {@code batch} (which this closes) along this route and returns what the reader gets. */
  <T> ShardBatch<T> carry(ShardBatch<T> batch, Class<T> type,
      BiFunction<byte[], BufferAllocator, ShardBatch<T>> readStream, BufferAllocator allocator, Path dir)
      throws IOException {
    switch (this) {
      case BATCH:
        return batch;
      case STREAM:
        try (batch) {
          return readStream.apply(ArrowShards.toIpcStream(batch), allocator);
        }
      default:
        Path file = dir.resolve("nested/dirs/shard.arrow");
        try (batch) {
          ArrowShards.writeIpcFile(batch, file);
        }
        ShardBatch<?> read = ArrowShards.readIpcFile(file, allocator);
        assertTrue(type.isInstance(read.shard()), "file kind detected as " + read.shard().getClass());
        @SuppressWarnings("unchecked")
        ShardBatch<T> typed = (ShardBatch<T>) read;
        return typed;
    }
  }
}
