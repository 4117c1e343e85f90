package shardquant.arrow;

import org.apache.arrow.vector.VectorSchemaRoot;

/**
 * An open Arrow batch holding one shard; closing frees its Arrow memory. Views returned by
 * {@link #shard()} are valid only until {@link #close()}. Closing twice is safe.
 */
public final class ShardBatch<T> implements AutoCloseable {
  private final VectorSchemaRoot root;
  private final T shard;
  private boolean closed;

  ShardBatch(VectorSchemaRoot root, T shard) {
    this.root = root;
    this.shard = shard;
  }

  /** The decoded record; its Tensors are views of this batch's off-heap Arrow memory, not copies. */
  public T shard() {
    requireOpen();
    return shard;
  }

  /** The underlying batch, owned by this object. */
  public VectorSchemaRoot root() {
    requireOpen();
    return root;
  }

  @Override
  public void close() {
    if (!closed) {
      closed = true;
      root.close();
    }
  }

  private void requireOpen() {
    if (closed) {
      throw new IllegalStateException("shard batch already closed; its tensor views are no longer valid");
    }
  }
}
