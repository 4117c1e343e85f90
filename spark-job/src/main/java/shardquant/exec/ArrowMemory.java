package shardquant.exec;

import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

/** One Arrow root allocator per JVM; each task works in a named child allocator it closes (a leak then fails the task). */
public final class ArrowMemory {
  private static RootAllocator root;

  private ArrowMemory() {}

  public static synchronized BufferAllocator child(String name) {
    if (root == null) {
      root = new RootAllocator(Long.MAX_VALUE);
    }
    return root.newChildAllocator(name, 0, Long.MAX_VALUE);
  }
}
