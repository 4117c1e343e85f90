package shardquant.kernels.golden;

import java.io.IOException;
import java.util.Set;

/** Runs one kind of golden case (the {@code kind} field of index.json) through shardquant's code. */
public interface GoldenKind {
  String kind();

  /** Expected tensors this kind deliberately does not compare (say, matmul outputs of PyTorch's kernels). */
  default Set<String> notChecked() {
    return Set.of();
  }

  void check(GoldenCase c, GoldenReport r) throws IOException;
}
