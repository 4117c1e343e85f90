package shardquant.arrow;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.Random;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/** One RootAllocator per test, closed after it, so any Arrow memory a test leaks fails that test. */
abstract class AllocatorTest {
  protected BufferAllocator allocator;
  @TempDir
  protected Path dir;

  @BeforeEach
  void openAllocator() {
    allocator = new RootAllocator();
  }

  @AfterEach
  void closeAllocator() {
    try {
      assertEquals(0, allocator.getAllocatedMemory(), "Arrow memory still allocated after the test");
    } finally {
      allocator.close();
    }
  }

  /** A heap tensor of random bytes (any bit pattern is fine: comparisons are bytewise). */
  static Tensor randomTensor(DType dtype, long seed, long... shape) {
    Tensor t = Tensor.allocate(dtype, shape);
    byte[] bytes = new byte[Math.toIntExact(t.byteSize())];
    new Random(seed).nextBytes(bytes);
    t.bytes().put(bytes);
    return t;
  }
}
