package shardquant.exec;

import java.io.IOException;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import scala.Tuple2;
import shardquant.arrow.ArrowShards;
import shardquant.arrow.QuantizedShard;
import shardquant.arrow.ShardBatch;
import shardquant.io.Storage;
import shardquant.common.TensorReport;
import shardquant.kernels.verify.QuantStats;
import shardquant.plan.OutputFile;
import shardquant.plan.Plan;

/**
 * Writes one output file from its shards (DESIGN.md, step 3). Every stored tensor's place is known
 * from the plan, so each arriving shard's pieces are written straight to their offsets in a
 * temporary file, in whatever order the shuffle delivers them; memory stays O(shard). In local mode
 * with a local output the quantize tasks have written them already ({@link ShardWriter}) and only
 * their runs and CRC-32Cs arrive. The header
 * goes in last (its size was reserved), with each stored tensor's CRC-32C, combined from the CRCs of
 * the runs as they were written ({@link Crc32c}); then the file is synced and renamed into place.
 * Where each piece goes is {@link Placement}'s.
 */
public final class FileAssembler implements Serializable {
  private static final long serialVersionUID = 1L;
  /** Test hook: the first attempt of this file's assembly fails after writing its first shard. */
  public static final String FAIL_FILE_CONF = "spark.shardquant.test.failAssemblyOf";

  private final Plan plan;
  private final String outputDir;
  /** Null: the shards arrive as IPC bytes and are written here; else the tasks wrote them into {@link ShardWriter#tempFile}. */
  private final String token;

  public FileAssembler(Plan plan, String outputDir) {
    this(plan, outputDir, null);
  }

  /**
   * {@code token} non-null: the quantize tasks wrote the shards' pieces into the file
   * {@link ShardWriter#tempFile}{@code (outputDir, name, token)} (which the driver made and removes if the
   * job fails), and only their runs and CRC-32Cs arrive here.
   */
  public FileAssembler(Plan plan, String outputDir, String token) {
    this.plan = plan;
    this.outputDir = outputDir;
    this.token = token;
  }

  public FileResult assemble(int fileIndex, Iterator<Tuple2<Integer, ShardPayload>> shards) throws IOException {
    long start = System.nanoTime();
    OutputFile f = plan.files().get(fileIndex);
    Path target = new Path(Storage.path(outputDir), f.name());
    FileSystem fs = Storage.fs(target, Storage.executorConf());
    TaskContext task = TaskContext.get();
    String attempt = task == null ? "driver" : task.stageId() + "-" + task.partitionId() + "-" + task.attemptNumber();
    java.nio.file.Path temp = token != null ? ShardWriter.tempFile(outputDir, f.name(), token)
        : Storage.isLocal(fs)
        ? java.nio.file.Path.of(target.getParent().toUri()).resolve("." + f.name() + ".tmp-" + attempt)
        : Files.createTempFile(scratchDir(), "shardquant-" + f.name(), ".tmp");
    boolean committed = false;
    try {
      Map<String, Long> written = new HashMap<>();
      Crc32c.Runs crcs = new Crc32c.Runs();
      Map<Integer, QuantStats> stats = new LinkedHashMap<>();
      Map<Integer, Long> nanos = new HashMap<>();
      Map<Integer, String> backends = new HashMap<>();
      int pieces = 0;
      try (FileChannel ch = token != null ? FileChannel.open(temp, StandardOpenOption.WRITE)
          : FileChannel.open(temp, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
          BufferAllocator alloc = ArrowMemory.child("assemble-" + f.name())) {
        while (shards.hasNext()) {
          Tuple2<Integer, ShardPayload> next = shards.next();
          if (next._1() != fileIndex) {
            throw new IllegalStateException(f.name() + ": got a shard of file " + next._1());
          }
          ShardPayload p = next._2();
          Plan.Shard shard = plan.shards().get(p.shard());
          Plan.Tensor t = plan.tensorOf(shard);
          if (p.arrowIpc() == null) {
            p.written().forEach((key, offset, length, crc) -> written.merge(key, length, Long::sum));
            crcs.addAll(p.written());
          } else {
            try (ShardBatch<QuantizedShard> b = ArrowShards.readQuantizedShard(p.arrowIpc(), alloc)) {
              ShardWriter.write(plan, ch, f, t, shard, b.shard().parts(), written, crcs);
            }
          }
          if (p.stats() != null) {
            stats.computeIfAbsent(t.index(), i -> new QuantStats()).merge(p.stats());
          }
          nanos.merge(t.index(), p.nanos(), Long::sum);
          backends.merge(t.index(), p.backend(), FileAssembler::bothBackends);
          failIfAsked(f, ++pieces);
        }
        checkComplete(f, written);
        Map<String, TensorReport> reports = new LinkedHashMap<>();
        for (int ti : f.tensors()) {
          Plan.Tensor t = plan.tensors().get(ti);
          if (t.quantized()) {
            reports.put(t.input().name(), TensorReport.of(t.input().name(), stats.get(ti), backends.get(ti),
                nanos.getOrDefault(ti, 0L)));
          } else if (t.action() == Plan.Action.REPACK) {
            reports.put(t.input().name(), repackReport(t, nanos.getOrDefault(ti, 0L)));
          }
        }
        byte[] header = f.header(reports, checksums(f, crcs));
        ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
        ShardWriter.writeAt(ch, len, 0);
        ShardWriter.writeAt(ch, ByteBuffer.wrap(header), 8);
        ch.force(true);
        shardquant.common.TestPause.onExecutor("assembly", fileIndex == plan.files().size() - 1 && fileIndex > 0);
        commit(fs, temp, target);
        committed = true;
        return new FileResult(fileIndex, f.name(), f.size(), List.copyOf(reports.values()), System.nanoTime() - start);
      }
    } catch (IOException e) {
      throw ShardWriter.noSpaceOr(e, target.toString(), f);
    } finally {
      if (!committed && token == null) { // the tasks' shared file: a retry of this task needs it
        Files.deleteIfExists(temp);
      }
    }
  }

  /**
   * Where a file for a remote output is assembled before its upload: Spark's local scratch of this
   * executor (in embedded mode the job's own folder, which the next run sweeps after a crash), not
   * java.io.tmpdir, where a killed task would strand up to --output-file-bytes.
   */
  private static java.nio.file.Path scratchDir() {
    org.apache.spark.SparkEnv env = org.apache.spark.SparkEnv.get();
    return env == null ? java.nio.file.Path.of(System.getProperty("java.io.tmpdir"))
        : java.nio.file.Path.of(org.apache.spark.util.Utils.getLocalDir(env.conf()));
  }

  /**
   * A repacked tensor's report: the stats its source file recorded (repacking changes no value), or, from
   * a source that recorded none, NaN for what only quantizing can measure.
   */
  static TensorReport repackReport(Plan.Tensor t, long nanos) {
    TensorReport r = t.repack().stats();
    String name = t.input().name();
    return r != null
        ? new TensorReport(name, r.sqnrDb(), r.maxAbsError(), r.clippedFraction(), r.elements(), r.nonFinite(), r.backend(), nanos)
        : new TensorReport(name, Double.NaN, Float.NaN, Double.NaN, t.input().rows() * t.input().cols(), 0,
            ShardQuantizer.REPACK_BACKEND, nanos);
  }

  /**
   * The backends of a tensor whose shards different backends quantized (a kernel that failed mid-job
   * hands its recipe to the reference): each named once, sorted, so the name does not depend on the
   * order the shards arrived in ({@code cpu-simd+reference}).
   */
  static String bothBackends(String a, String b) {
    java.util.TreeSet<String> names = new java.util.TreeSet<>(List.of(a.split("\\+")));
    names.addAll(List.of(b.split("\\+")));
    return String.join("+", names);
  }

  /** CRC-32C of every stored tensor, combined from the runs written (its pieces arrived in any order). */
  static Map<String, Integer> checksums(OutputFile f, Crc32c.Runs crcs) {
    Map<String, Integer> out = new HashMap<>();
    for (var d : f.declared()) {
      out.put(d.name(), crcs.crc(d.name(), d.byteSize()));
    }
    return out;
  }

  private static void checkComplete(OutputFile f, Map<String, Long> written) {
    for (var d : f.declared()) {
      long got = written.getOrDefault(d.name(), 0L);
      if (got != d.byteSize()) {
        throw new IllegalStateException(f.name() + ": " + d.name() + " got " + got + " of " + d.byteSize()
            + " bytes from its shards (a shard is missing or duplicated)");
      }
    }
  }

  private static void commit(FileSystem fs, java.nio.file.Path temp, Path target) throws IOException {
    if (Storage.isLocal(fs)) {
      Storage.replace(fs, new Path(temp.toUri()), target);
      return;
    }
    Path remoteTemp = new Path(target.getParent(), "." + target.getName() + ".tmp-" + java.util.UUID.randomUUID());
    try {
      fs.copyFromLocalFile(true, true, new Path(temp.toUri()), remoteTemp);
      Storage.replace(fs, remoteTemp, target);
    } finally {
      fs.delete(remoteTemp, false);
    }
  }

  private static void failIfAsked(OutputFile f, int pieces) {
    TaskContext task = TaskContext.get();
    String target = SparkEnv.get() == null ? null : SparkEnv.get().conf().get(FAIL_FILE_CONF, null);
    if (task != null && f.name().equals(target) && task.attemptNumber() == 0 && pieces == 1) {
      throw new IllegalStateException("injected failure in the assembly of " + f.name() + " (" + FAIL_FILE_CONF + ")");
    }
  }
}
