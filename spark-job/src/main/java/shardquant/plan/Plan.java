package shardquant.plan;

import java.io.Serializable;
import java.util.Arrays;
import java.util.List;
import shardquant.common.TensorReport;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;

/**
 * What the job will do, decided on the driver from headers alone: every input tensor's fate
 * (quantized, copied, or repacked into another int4 layout), its stored parts and their place in an
 * output file, the row shards executors work on, and how shards are grouped into Spark tasks.
 * Executors get it inside their task closures.
 *
 * <p>{@code config} is the recipe the output's quantized tensors have (null for a repack into the plain
 * int4 form, which no recipe writes); {@code layout} is the target of a repack (null for quantize).
 */
public record Plan(QuantConfig config, Int4Layout layout, String fingerprint, String jobId, List<Tensor> tensors,
    List<Shard> shards, List<int[]> groups, List<OutputFile> files) implements Serializable {

  /** What the job does with an input tensor. */
  public enum Action {
    /** Quantized with the plan's recipe. */
    QUANTIZE,
    /** Copied unchanged: one part, under its own name. */
    COPY,
    /** A tinygemm int4 tensor converted into the plan's layout, bit-exact, without re-quantizing. */
    REPACK
  }

  /**
   * One input tensor and its fate; {@code metadata} is its per-tensor {@code __metadata__} value in the
   * output file, and {@code repack} (REPACK only, else null) where its source parts lie.
   */
  /** The recipes a job of {@code config} quantizes with: none for a repack (null config). */
  public static java.util.List<shardquant.kernels.quant.Recipe> recipes(QuantConfig config) {
    return config == null ? java.util.List.of() : java.util.List.of(config.recipe());
  }

  public record Tensor(int index, InputTensor input, Action action, String metadata, Repack repack, int file,
      List<StoredPart> parts, int firstShard, int shardCount) implements Serializable {
    public long storedBytes() {
      return parts.stream().mapToLong(StoredPart::byteSize).sum();
    }

    public boolean quantized() {
      return action == Action.QUANTIZE;
    }

    /** Whether the tensor has a report (stats in its file's header and in the job's report): all but copies. */
    public boolean reported() {
      return action != Action.COPY;
    }

    /** Input bytes for {@code rows} rows: the stored source parts of a repacked tensor, else the input rows. */
    public long inputBytes(long rows) {
      if (action != Action.REPACK) {
        return rows * input.rowBytes();
      }
      return repack.from().parts(rows, input.cols(), repack.groupSize()).stream()
          .mapToLong(p -> bytes(p.dtype(), p.shape())).sum();
    }

    /** With its stored parts at their offsets in the output file (the planner assigns them last). */
    Tensor withParts(List<StoredPart> placed) {
      return new Tensor(index, input, action, metadata, repack, file, List.copyOf(placed), firstShard, shardCount);
    }
  }

  /**
   * The source of a repacked tensor: its layout and group size, the file holding its stored parts, and
   * those parts in the source layout's order, each with its absolute byte offset in that file; the
   * stats its source file recorded when it was quantized (the values do not change), or null if none.
   */
  public record Repack(Int4Layout from, Int4Layout to, int groupSize, String file, List<StoredPart> sources,
      TensorReport stats) implements Serializable {}

  /**
   * A stored tensor of an output file: its key, dtype and full shape, the dimension that grows with the
   * original rows (-1: every shard holds it whole), and its offset in the file's data section (for a
   * repack's source part, its absolute offset in the source file).
   */
  public record StoredPart(String key, String dataName, DType dtype, long[] shape, int rowDim, long offset)
      implements Serializable {
    public long byteSize() {
      return bytes(dtype, shape);
    }

    @Override
    public String toString() {
      return key + " " + dtype.safetensorsName() + Arrays.toString(shape);
    }
  }

  static long bytes(DType dtype, long[] shape) {
    long n = dtype.byteSize();
    for (long d : shape) {
      n *= d;
    }
    return n;
  }

  /** Rows [rowStart, rowEnd) of tensor {@code tensor}. */
  public record Shard(int index, int tensor, long rowStart, long rowEnd) implements Serializable {}

  public Tensor tensorOf(Shard s) {
    return tensors.get(s.tensor());
  }

  /** The output parts of the first {@code rows} rows of a quantized or repacked tensor (as a shard of its own). */
  public List<PartSpec> partsOfRows(Tensor t, long rows) {
    InputTensor in = t.input();
    return switch (t.action()) {
      case QUANTIZE -> config.recipe().kernel().parts(rows, in.cols(), in.dtype(), config);
      case REPACK -> layout.parts(rows, in.cols(), t.repack().groupSize());
      case COPY -> throw new IllegalStateException(in.name() + " is copied whole, as one part");
    };
  }

  public long inputBytes(Shard s) {
    return tensorOf(s).inputBytes(s.rowEnd() - s.rowStart());
  }

  public long totalInputBytes() {
    return tensors.stream().mapToLong(t -> t.input().byteSize()).sum();
  }

  public long totalOutputBytes() {
    return files.stream().mapToLong(OutputFile::size).sum();
  }

  /** What the output holds, for the console and the report: the recipe, or the plain int4 form. */
  public String describe() {
    String what = config != null ? config.toString()
        : "int4 plain layout group " + tensors.stream().filter(t -> t.repack() != null).findFirst().orElseThrow().repack().groupSize();
    return layout == null ? what : what + " (repacked, layout " + layout.cliName() + ")";
  }
}
