package shardquant.exec;

import java.io.IOException;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import scala.Tuple2;
import shardquant.arrow.ArrowShards;
import shardquant.arrow.QuantizedShard;
import shardquant.arrow.ShardBatch;
import shardquant.arrow.ShardPart;
import shardquant.arrow.TensorShard;
import shardquant.common.UserError;
import shardquant.io.FileNames;
import shardquant.io.OpenFiles;
import shardquant.io.Storage;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.select.Backends;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.repack.TinygemmInt4Tensor;
import shardquant.kernels.select.Backends;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;
import shardquant.plan.InputTensor;
import shardquant.plan.Plan;

/**
 * The executor's side of a shard (DESIGN.md, step 2): read the shard's bytes straight from storage
 * into an Arrow batch, check them, quantize and verify them (or, for a repack, convert its int4 parts
 * to the target layout), and either write the quantized shard into its output file ({@link ShardWriter}, local
 * mode) or emit it as Arrow IPC bytes; either way keyed by its output file. Also a recipe's first pass (each shard's partial).
 */
public final class ShardQuantizer implements Serializable {
  private static final long serialVersionUID = 1L;
  /** Test hook: the first attempt of a task fails halfway through a shard of this tensor. */
  public static final String FAIL_SHARD_CONF = "spark.shardquant.test.failShardOf";
  /** The backend a repacked tensor's report names: no kernel ran, its codes were moved. */
  public static final String REPACK_BACKEND = "repack";

  private final Plan plan;
  private final Map<Integer, GlobalStats> globals;
  private final String dumpDir;
  private final String backend;
  private final String outputDir;
  private final String token;

  /** {@code backend}: a name for {@link Backends#forName}, resolved on each executor (the choice depends on its JVM and CPU). */
  public ShardQuantizer(Plan plan, Map<Integer, GlobalStats> globals, String dumpDir, String backend) {
    this(plan, globals, dumpDir, backend, null, null);
  }

  /**
   * With a {@code token}, each shard's pieces are written by this task into its output file's
   * {@link ShardWriter#tempFile}{@code (outputDir, name, token)} and only the runs written travel on;
   * without, the shard travels as Arrow IPC bytes to the file's assembler.
   */
  public ShardQuantizer(Plan plan, Map<Integer, GlobalStats> globals, String dumpDir, String backend, String outputDir,
      String token) {
    this.plan = plan;
    this.globals = globals;
    this.dumpDir = dumpDir;
    this.backend = backend;
    this.outputDir = outputDir;
    this.token = token;
  }

  /** Quantizes, copies or repacks every shard of one task's group. */
  public List<Tuple2<Integer, ShardPayload>> quantize(int[] group) throws IOException {
    List<Tuple2<Integer, ShardPayload>> out = new ArrayList<>();
    Backend b = TaskGpu.backend(backend, Plan.recipes(plan.config()));
    String taskBackend = plan.config() == null ? REPACK_BACKEND : b.nameFor(plan.config().recipe());
    try (OpenFiles inputs = new OpenFiles(Storage.executorConf()); BufferAllocator alloc = ArrowMemory.child("quantize-" + group[0]);
        ShardWriter writer = token == null ? null : new ShardWriter(plan, outputDir, token)) {
      for (int s : group) {
        Plan.Shard shard = plan.shards().get(s);
        Plan.Tensor t = plan.tensorOf(shard);
        long start = System.nanoTime();
        QuantStats stats = t.quantized() ? new QuantStats() : null;
        String used = null; // the backend that quantized this shard; a copy or repack names its own
        byte[] ipc;
        Crc32c.Runs written = null;
        if (t.action() == Plan.Action.REPACK) {
          List<ShardPart> parts = repack(inputs, t, shard, b);
          ipc = encode(t, shard, parts, alloc, writer == null);
          written = writer == null ? null : writer.write(t, shard, parts);
        } else {
          try (ShardBatch<TensorShard> in = read(inputs, shard, alloc)) {
            Tensor rows = marked(in.shard().data(), t.input(), shard);
            List<ShardPart> parts = new ArrayList<>();
            if (t.quantized()) {
              failIfAsked(t.input(), rows);
              QuantizedTensor q;
              try {
                q = b.quantize(rows, plan.config(), globals.getOrDefault(t.index(), GlobalStats.NONE), stats);
              } catch (IllegalArgumentException e) {
                // every backend refuses NaN and infinity; say where, in the file's terms (a rare, slow path)
                checkFinite(t.input(), shard, rows);
                throw e;
              }
              // asked after the shard: a kernel that failed on it has handed it (and the recipe) to the reference
              used = b.nameFor(plan.config().recipe());
              for (Plan.StoredPart p : t.parts()) {
                parts.add(new ShardPart(p.key(), p.rowDim(), q.part(p.dataName())));
              }
            } else {
              parts.add(new ShardPart(t.input().name(), t.parts().get(0).rowDim(), rows));
            }
            ipc = encode(t, shard, parts, alloc, writer == null);
            written = writer == null ? null : writer.write(t, shard, parts); // while the input's buffer is open
          }
          shardquant.common.TestPause.onExecutor("quantize", s == group[0] && TaskContext.getPartitionId() == 0);
        }
        out.add(new Tuple2<>(t.file(), new ShardPayload(s, ipc, stats, System.nanoTime() - start,
            t.action() == Plan.Action.REPACK ? REPACK_BACKEND : used != null ? used : taskBackend, written)));
      }
    }
    return out;
  }

  /** The shard's output parts as Arrow IPC bytes if {@code ipc} (else null), and a dump file, if asked. */
  private byte[] encode(Plan.Tensor t, Plan.Shard shard, List<ShardPart> parts, BufferAllocator alloc, boolean ipc)
      throws IOException {
    if (!ipc && dumpDir == null) {
      return null;
    }
    try (ShardBatch<QuantizedShard> q = ArrowShards.quantizedShard(
        new QuantizedShard(t.input().name(), shard.rowStart(), shard.rowEnd(), parts), alloc)) {
      byte[] bytes = ipc ? ArrowShards.toIpcStream(q) : null;
      if (dumpDir != null) {
        dump(q, t.input(), shard);
      }
      return bytes;
    }
  }

  /**
   * {@code --dump-shards DIR}: the shard as {@code DIR/<tensor>.rows-<a>-<b>.arrow}, the tensor's name made
   * a file name by {@link FileNames#of} (the name is the input's data and may hold {@code ../} or a NUL).
   * DIR is made on this executor if missing; one that cannot be made or written is the user's to fix.
   */
  private void dump(ShardBatch<QuantizedShard> q, InputTensor in, Plan.Shard shard) {
    Path dir = Path.of(dumpDir);
    Path file = dir.resolve(FileNames.of(in.name()) + ".rows-" + shard.rowStart() + "-" + shard.rowEnd() + ".arrow");
    assert file.getParent().equals(dir) : file;
    try {
      ArrowShards.writeIpcFile(q, file); // makes DIR if missing
    } catch (IOException e) {
      throw UserError.onExecutor("--dump-shards " + dumpDir + ": cannot write the shard of tensor '" + in.name() + "' rows ["
          + shard.rowStart() + ", " + shard.rowEnd() + ") as " + file.getFileName() + ": " + describe(e)
          + " (give a directory this executor can create and write)");
    }
  }

  /** An I/O error in a few words: java.nio's often carry only the path as their message. */
  private static String describe(IOException e) {
    if (!(e instanceof FileSystemException f)) {
      return String.valueOf(e.getMessage());
    }
    String why = f.getReason() != null ? f.getReason()
        : e instanceof FileAlreadyExistsException ? "a file is in the way"
        : e instanceof AccessDeniedException ? "permission denied" : e.getClass().getSimpleName();
    return f.getFile() + ": " + why;
  }

  /**
   * A repacked shard: each source part's bytes for the shard's rows gathered from the input file (where
   * {@link Placement} says a piece of that part lies), converted as one {@link TinygemmInt4Tensor}.
   */
  private List<ShardPart> repack(OpenFiles inputs, Plan.Tensor t, Plan.Shard shard, Backend b) throws IOException {
    Plan.Repack r = t.repack();
    long rows = shard.rowEnd() - shard.rowStart();
    long cols = t.input().cols();
    List<PartSpec> pieces = r.from().parts(rows, cols, r.groupSize());
    List<PartSpec> before = shard.rowStart() == 0 ? null : r.from().parts(shard.rowStart(), cols, r.groupSize());
    Map<String, Tensor> parts = new LinkedHashMap<>();
    for (int i = 0; i < pieces.size(); i++) {
      PartSpec piece = pieces.get(i);
      Plan.StoredPart source = r.sources().get(i);
      long along = before == null ? 0 : before.get(i).shape()[before.get(i).rowDim()];
      ByteBuffer bytes = ByteBuffer.allocate(Math.toIntExact(Tensor.numel(piece.shape()) * piece.dtype().byteSize()))
          .order(ByteOrder.LITTLE_ENDIAN);
      try {
        Placement.runs(source, along, piece.shape(), source.offset(), (from, at, length) -> {
          ByteBuffer run = bytes.duplicate();
          run.position(Math.toIntExact(from)).limit(Math.toIntExact(from + length));
          inputs.readFully(r.file(), at, run);
        });
      } catch (java.io.EOFException e) {
        throw UserError.onExecutor(Storage.display(r.file()) + ": tensor '" + t.input().name() + "': file ends inside '"
            + source.key() + "' for rows [" + shard.rowStart() + ", " + shard.rowEnd() + ") (truncated since the job was planned?)");
      }
      parts.put(piece.name(), Tensor.of(piece.dtype(), piece.shape(), bytes));
    }
    TinygemmInt4Tensor converted;
    try {
      TinygemmInt4Tensor source = new TinygemmInt4Tensor(r.from(), r.groupSize(), new long[] {rows, cols}, parts);
      converted = b.repack(source, r.to()); // on a GPU, there (int4_unpack.cu), with the Java repack's bytes and refusals
    } catch (IllegalArgumentException e) {
      throw UserError.onExecutor(Storage.display(r.file()) + ": tensor '" + t.input().name() + "' rows [" + shard.rowStart()
          + ", " + shard.rowEnd() + "): " + e.getMessage());
    }
    List<ShardPart> out = new ArrayList<>();
    for (Plan.StoredPart p : t.parts()) {
      out.add(new ShardPart(p.key(), p.rowDim(), converted.part(p.dataName())));
    }
    return out;
  }

  /** The recipe's first pass: each shard's partial ({@link Backend#firstPass}). */
  public List<Tuple2<Integer, float[]>> firstPass(int[] group) throws IOException {
    List<Tuple2<Integer, float[]>> out = new ArrayList<>();
    Backend b = TaskGpu.backend(backend, Plan.recipes(plan.config()));
    try (OpenFiles inputs = new OpenFiles(Storage.executorConf()); BufferAllocator alloc = ArrowMemory.child("first-pass-" + group[0])) {
      for (int s : group) {
        Plan.Shard shard = plan.shards().get(s);
        Plan.Tensor t = plan.tensorOf(shard);
        if (!t.quantized()) {
          continue;
        }
        try (ShardBatch<TensorShard> in = read(inputs, shard, alloc)) {
          float[] partial;
          try {
            partial = b.firstPass(plan.config(), marked(in.shard().data(), t.input(), shard));
          } catch (IllegalArgumentException e) {
            // NaN and infinity are refused; say where, in the file's terms (a rare, slow path)
            checkFinite(t.input(), shard, in.shard().data());
            throw e;
          }
          out.add(new Tuple2<>(s, partial));
        }
      }
    }
    return out;
  }

  /**
   * {@code rows} marked with where they were read ({@link Tensor#origin}: this Spark application, the
   * file, offset and length), so a GPU backend may keep the first pass's upload for the second stage;
   * unmarked outside Spark. Both stages read a shard through here, at the same place.
   */
  static Tensor marked(Tensor rows, InputTensor in, Plan.Shard shard) {
    SparkEnv env = SparkEnv.get();
    String app = env == null ? null : env.conf().get("spark.app.id", null);
    if (app == null) {
      return rows;
    }
    long offset = in.offset() + shard.rowStart() * in.rowBytes();
    return rows.withOrigin(new Tensor.Origin(app, in.file() + "@" + offset + "+" + rows.byteSize()));
  }

  private ShardBatch<TensorShard> read(OpenFiles inputs, Plan.Shard shard, BufferAllocator alloc) throws IOException {
    InputTensor in = plan.tensorOf(shard).input();
    long offset = in.offset() + shard.rowStart() * in.rowBytes();
    try {
      return ArrowShards.tensorShard(in.name(), in.shape(), shard.rowStart(), shard.rowEnd(), in.dtype(), alloc,
          buf -> inputs.readFully(in.file(), offset, buf));
    } catch (java.io.EOFException e) {
      throw UserError.onExecutor(Storage.display(in.file()) + ": tensor '" + in.name() + "': file ends before its rows [" + shard.rowStart()
          + ", " + shard.rowEnd() + ") (truncated since the job was planned?)");
    }
  }

  /** NaN or infinity in a weight has no quantized value: refuse it, naming the place. */
  static void checkFinite(InputTensor in, Plan.Shard shard, Tensor rows) {
    long n = rows.numel();
    for (long i = 0; i < n; i++) {
      float v = rows.getFloat(i);
      if (!Float.isFinite(v)) {
        long cols = in.cols();
        throw UserError.onExecutor(Storage.display(in.file()) + ": tensor '" + in.name() + "' has " + v + " at row "
            + (shard.rowStart() + i / cols) + ", column " + (i % cols) + "; a weight to quantize must be finite"
            + " (fix the checkpoint, or leave the tensor out with --exclude)");
      }
    }
  }

  private static void failIfAsked(InputTensor in, Tensor rows) {
    TaskContext task = TaskContext.get();
    String target = SparkEnv.get() == null ? null : SparkEnv.get().conf().get(FAIL_SHARD_CONF, null);
    if (task != null && in.name().equals(target) && task.attemptNumber() == 0) {
      rows.getFloat(rows.numel() / 2);
      throw new IllegalStateException("injected failure halfway through a shard of " + in.name() + " (" + FAIL_SHARD_CONF + ")");
    }
  }
}
