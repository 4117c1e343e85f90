package shardquant.benchmarks;

import shardquant.kernels.tensor.SyntheticWeights;
import shardquant.kernels.tensor.Tensor;

/**
 * The benchmarks' input: one 4096x4096 bf16 row shard (32 MiB, Llama-3-8B's q_proj) in a direct buffer,
 * the synthetic checkpoint's values. Scores are reported per MiB ({@code @OperationsPerInvocation(MIB)}),
 * so JMH's ops/s reads as MiB/s of bf16 input.
 */
final class Shard {
  static final int ROWS = 4096;
  static final int COLS = 4096;
  static final int MIB = ROWS * COLS * 2 >> 20;

  private Shard() {}

  static Tensor create() {
    return SyntheticWeights.directBf16(42, "model.layers.0.self_attn.q_proj.weight", ROWS, COLS);
  }
}
