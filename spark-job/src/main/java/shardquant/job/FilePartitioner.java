package shardquant.job;

import java.util.Arrays;
import org.apache.spark.Partitioner;

/** Sends every shard of an output file to that file's one assembly task. */
final class FilePartitioner extends Partitioner {
  private static final long serialVersionUID = 1L;
  private final int[] files;

  /** {@code files}: the indices of the files to build, in partition order. */
  FilePartitioner(int[] files) {
    this.files = files.clone();
  }

  @Override
  public int numPartitions() {
    return files.length;
  }

  @Override
  public int getPartition(Object key) {
    int p = Arrays.binarySearch(files, (Integer) key);
    if (p < 0) {
      throw new IllegalArgumentException("output file " + key + " is not being built");
    }
    return p;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof FilePartitioner f && Arrays.equals(files, f.files);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(files);
  }
}
