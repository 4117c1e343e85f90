package shardquant.plan;

import java.io.Serializable;
import java.util.Arrays;
import java.util.List;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.QuantConfig;

/**
 * What the job will do, decided on the driver from headers alone: every input tensor's fate
 * (quantized or copied), its stored parts and their place in an output file, the row shards executors
 * work on, and how shards are grouped into Spark tasks. Executors get it inside their task closures.
 */
public record Plan(QuantConfig config, String fingerprint, String jobId, List<Tensor> tensors, List<Shard> shards,
    List<int[]> groups, List<OutputFile> files) implements Serializable {

  /** One input tensor: quantized with the recipe, or copied unchanged (one part, its own name). */
  public record Tensor(int index, InputTensor input, boolean quantized, int file, List<StoredPart> parts,
      int firstShard, int shardCount) implements Serializable {
    public long storedBytes() {
      return parts.stream().mapToLong(StoredPart::byteSize).sum();
    }
  }

  /**
   * A stored tensor of an output file: its key, dtype and full shape, the dimension that grows with the
   * original rows (-1: every shard holds it whole), and its offset in the file's data section.
   */
  public record StoredPart(String key, String dataName, DType dtype, long[] shape, int rowDim, long offset)
      implements Serializable {
    public long byteSize() {
      long n = dtype.byteSize();
      for (long s : shape) {
        n *= s;
      }
      return n;
    }

    @Override
    public String toString() {
      return key + " " + dtype.safetensorsName() + Arrays.toString(shape);
    }
  }

  /** Rows [rowStart, rowEnd) of tensor {@code tensor}. */
  public record Shard(int index, int tensor, long rowStart, long rowEnd) implements Serializable {}

  public Tensor tensorOf(Shard s) {
    return tensors.get(s.tensor());
  }

  public long inputBytes(Shard s) {
    return (s.rowEnd() - s.rowStart()) * tensorOf(s).input().rowBytes();
  }

  public long totalInputBytes() {
    return tensors.stream().mapToLong(t -> t.input().byteSize()).sum();
  }

  public long totalOutputBytes() {
    return files.stream().mapToLong(OutputFile::size).sum();
  }
}
