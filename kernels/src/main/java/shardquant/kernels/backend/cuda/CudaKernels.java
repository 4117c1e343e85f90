package shardquant.kernels.backend.cuda;

import shardquant.kernels.dtype.DType;

/** Conventions the host code and src/main/cuda share. */
final class CudaKernels {
  private CudaKernels() {}

  /** SQ_DTYPE_* of sq_common.cuh, for a floating input dtype. */
  static int dtype(DType d) {
    return switch (d) {
      case BF16 -> 0;
      case F16 -> 1;
      case F32 -> 2;
      default -> throw new IllegalArgumentException("the CUDA kernels take float32, bfloat16 or float16 input, got " + d);
    };
  }

  /** Whether the kernels take input of dtype {@code d}. */
  static boolean takes(DType d) {
    return d == DType.BF16 || d == DType.F16 || d == DType.F32;
  }

  /** Blocks covering {@code items} at {@code perBlock} each (at least one). */
  static int blocks(long items, int perBlock) {
    return Math.toIntExact(Math.max(1, (items + perBlock - 1) / perBlock));
  }
}
