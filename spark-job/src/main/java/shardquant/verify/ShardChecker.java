package shardquant.verify;

import java.io.IOException;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import scala.Tuple2;
import shardquant.exec.Placement;
import shardquant.io.OpenFiles;
import shardquant.io.Storage;
import shardquant.common.UserError;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.select.Backends;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.safetensors.SafetensorsHeader;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;
import shardquant.plan.InputTensor;
import shardquant.plan.OutputFile;
import shardquant.plan.Plan;

/**
 * The executor's side of verify, one Spark task at a time, in O(shard) memory: a group of shards
 * re-quantized from the input and compared with the bytes stored for them (where every byte agrees,
 * the re-quantization's stats are the stored values' stats), an output file's stored tensors against their recorded CRC-32C, and
 * a recipe's first pass. Each returns a few words and numbers to the driver, which combines them.
 */
final class ShardChecker implements Serializable {
  private static final long serialVersionUID = 1L;

  private final Plan plan;
  private final Map<Integer, Stored> stored;
  private final Map<Integer, String> backends;
  private final Map<Integer, GlobalStats> globals;

  /** Where a tensor's parts lie in the output: its file (a Hadoop path) and each part's first byte there. */
  record Stored(String file, long[] partStarts) implements Serializable {}

  /**
   * One shard's outcome: the first difference (null if none); for a quantized tensor without one, the
   * stats of its stored values (the re-quantization's, its bytes being the stored ones); the backend
   * that re-quantized it.
   */
  record ShardCheck(int shard, String problem, QuantStats stats, String backend) implements Serializable {}

  /** An output file's checksum differences, in the order of its header. */
  record FileCheck(String file, List<String> problems) implements Serializable {}

  /**
   * {@code stored}: the tensors to compare (by plan index); {@code backends}: the backend name
   * ({@link Backends#forName}) each quantized one is re-quantized with, resolved on the executor.
   */
  ShardChecker(Plan plan, Map<Integer, Stored> stored, Map<Integer, String> backends, Map<Integer, GlobalStats> globals) {
    this.plan = plan;
    this.stored = stored;
    this.backends = backends;
    this.globals = globals;
  }

  /** Every shard of a task's group whose tensor is compared, in order. */
  List<ShardCheck> check(int[] group) throws IOException {
    List<ShardCheck> out = new ArrayList<>();
    try (OpenFiles files = new OpenFiles(Storage.executorConf())) {
      for (int s : group) {
        Plan.Shard shard = plan.shards().get(s);
        Plan.Tensor t = plan.tensorOf(shard);
        if (stored.containsKey(t.index())) {
          out.add(check(t, shard, files));
        }
      }
    }
    return out;
  }

  private ShardCheck check(Plan.Tensor t, Plan.Shard shard, OpenFiles files) throws IOException {
    Tensor rows = readRows(t.input(), shard, files);
    List<Tensor> want = new ArrayList<>();
    String used = null;
    QuantStats stats = null;
    if (t.quantized()) {
      Backend b = Backends.forName(backends.get(t.index()));
      used = b.nameFor(plan.config().recipe());
      stats = new QuantStats();
      QuantizedTensor q;
      try {
        q = b.quantize(rows, plan.config(), globals.getOrDefault(t.index(), GlobalStats.NONE), stats);
      } catch (IllegalArgumentException e) { // the input changed since (NaN, infinity): it gives no output at all
        return new ShardCheck(shard.index(), "tensor '" + t.input().name() + "': rows [" + shard.rowStart() + ", "
            + shard.rowEnd() + ") of the input do not quantize: " + e.getMessage(), null, used);
      }
      t.parts().forEach(p -> want.add(q.part(p.dataName())));
    } else {
      want.add(rows);
    }
    Stored where = stored.get(t.index());
    for (int i = 0; i < want.size(); i++) {
      Plan.StoredPart part = t.parts().get(i);
      Tensor piece = readPiece(t, shard, i, want.get(i).shape(), where, files);
      int m = want.get(i).bytes().mismatch(piece.bytes());
      if (m >= 0) {
        return new ShardCheck(shard.index(), "tensor '" + t.input().name() + "': stored '" + part.key()
            + "' differs from re-quantizing the input at byte " + m + " of its piece for rows [" + shard.rowStart()
            + ", " + shard.rowEnd() + ")", null, used);
      }
    }
    // Every stored byte is the re-quantization's, and every backend's stats are those of the values its
    // bytes dequantize to (StoredStatsTest), so these are the stored values' stats: no dequantize here.
    return new ShardCheck(shard.index(), null, stats, used);
  }

  /** A shard's piece of part {@code i}, gathered from the output file where {@link Placement} put it. */
  private Tensor readPiece(Plan.Tensor t, Plan.Shard shard, int i, long[] pieceShape, Stored where, OpenFiles files)
      throws IOException {
    Plan.StoredPart part = t.parts().get(i);
    // The plan laid the parts out in a file of its own; the output file has them where its header says.
    long partStart = where.partStarts()[i];
    ByteBuffer piece = ByteBuffer.allocate(Math.toIntExact(Tensor.numel(pieceShape) * part.dtype().byteSize()))
        .order(ByteOrder.LITTLE_ENDIAN);
    if (part.rowDim() == PartSpec.REPLICATED) {
      files.readFully(where.file(), partStart, piece.duplicate());
    } else {
      Placement.runs(plan, t, shard, i, pieceShape, partStart - part.offset(), (from, to, length) -> {
        ByteBuffer run = piece.duplicate();
        run.position(Math.toIntExact(from)).limit(Math.toIntExact(from + length));
        files.readFully(where.file(), to, run);
      });
    }
    return Tensor.of(part.dtype(), pieceShape, piece);
  }

  /**
   * The recipe's first pass over a task's shards (NF4: block absmax): each quantized shard's partial, from the
   * backend that re-quantizes its tensor (the one place verify knows of a first pass).
   */
  List<Tuple2<Integer, float[]>> firstPass(int[] group) throws IOException {
    List<Tuple2<Integer, float[]>> out = new ArrayList<>();
    try (OpenFiles files = new OpenFiles(Storage.executorConf())) {
      for (int s : group) {
        Plan.Shard shard = plan.shards().get(s);
        Plan.Tensor t = plan.tensorOf(shard);
        if (t.quantized() && stored.containsKey(t.index())) {
          Backend b = Backends.forName(backends.get(t.index()));
          out.add(new Tuple2<>(s, b.firstPass(plan.config(), readRows(t.input(), shard, files))));
        }
      }
    }
    return out;
  }

  private static Tensor readRows(InputTensor in, Plan.Shard shard, OpenFiles files) throws IOException {
    long rows = shard.rowEnd() - shard.rowStart();
    ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(rows * in.rowBytes()));
    try {
      files.readFully(in.file(), in.offset() + shard.rowStart() * in.rowBytes(), b);
    } catch (java.io.EOFException e) {
      throw UserError.onExecutor(Storage.display(in.file()) + ": tensor '" + in.name() + "': file ends before its rows ["
          + shard.rowStart() + ", " + shard.rowEnd() + ") (truncated since the output was written?)");
    }
    b.flip();
    long[] shape = in.shape();
    if (shape.length > 0) {
      shape[0] = rows;
    }
    return Tensor.of(in.dtype(), shape, b.order(ByteOrder.LITTLE_ENDIAN));
  }

  /** An output file's stored tensors against the CRC-32C its header recorded, read on an executor. */
  static FileCheck checksums(String file) throws IOException {
    Path p = new Path(file);
    FileSystem fs = Storage.fs(p, Storage.executorConf());
    return new FileCheck(file, checksums(fs, p, Storage.readHeader(fs, p)));
  }

  /** Every stored tensor's CRC-32C against the one its file's header recorded when it was written. */
  static List<String> checksums(FileSystem fs, Path file, SafetensorsHeader h) throws IOException {
    List<String> problems = new ArrayList<>();
    Map<String, String> recorded = OutputFile.checksumsIn(h.metadata());
    if (recorded.isEmpty()) {
      return List.of(file.getName() + ": records no checksums (not written by this shardquant version)");
    }
    try (FSDataInputStream in = fs.open(file)) {
      byte[] buf = new byte[1 << 20];
      for (TensorEntry e : h.entries().values()) {
        CRC32C crc = new CRC32C();
        for (long done = 0; done < e.byteSize(); ) {
          int n = (int) Math.min(buf.length, e.byteSize() - done);
          in.readFully(h.dataStart() + e.begin() + done, buf, 0, n);
          crc.update(buf, 0, n);
          done += n;
        }
        String got = OutputFile.checksum((int) crc.getValue());
        if (!got.equals(recorded.get(e.name()))) {
          problems.add(file.getName() + ": stored '" + e.name() + "' has CRC-32C " + got + " but its header recorded "
              + recorded.get(e.name()) + " when it was written (the file changed since)");
        }
      }
    }
    return problems;
  }
}
