package shardquant.exec;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.fs.Path;
import shardquant.arrow.ShardPart;
import shardquant.common.Format;
import shardquant.common.UserError;
import shardquant.io.Storage;
import shardquant.plan.OutputFile;
import shardquant.plan.Plan;

/**
 * Writes shards' pieces at their places in an output file's temporary file, taking each run's CRC-32C
 * on the way. The assembler uses it for the shards the shuffle brings; where every task can reach the
 * output's local file system (local mode, a local output directory), the quantize tasks use it
 * themselves: each shard's pieces go from the kernels' buffers straight into the file (the driver made
 * the file, {@link #tempFile}), in parallel, and only the runs written and their CRC-32Cs travel to the
 * file's assembler, which writes the header and commits. A retried task writes the same bytes again.
 */
public final class ShardWriter implements AutoCloseable {
  private final Plan plan;
  private final String outputDir;
  private final String token;
  private final Map<Integer, FileChannel> open = new HashMap<>();

  /** Writes into the files {@link #tempFile}{@code (outputDir, name, token)}, which must exist. */
  public ShardWriter(Plan plan, String outputDir, String token) {
    this.plan = plan;
    this.outputDir = outputDir;
    this.token = token;
  }

  /** The temporary file output file {@code name} is written into by a job's tasks ({@code token}: the job's). */
  public static java.nio.file.Path tempFile(String outputDir, String name, String token) {
    return java.nio.file.Path.of(new Path(Storage.path(outputDir), name).getParent().toUri()).resolve("." + name + ".tmp-" + token);
  }

  /** Writes one shard's pieces into its file; returns the runs written with their CRC-32Cs. */
  public Crc32c.Runs write(Plan.Tensor t, Plan.Shard shard, List<ShardPart> parts) throws IOException {
    OutputFile f = plan.files().get(t.file());
    Crc32c.Runs runs = new Crc32c.Runs();
    try {
      FileChannel ch = open.get(f.index());
      if (ch == null) {
        // no CREATE: a file the driver removed (the job failed) is not made again by a task still running
        ch = FileChannel.open(tempFile(outputDir, f.name(), token), StandardOpenOption.WRITE);
        open.put(f.index(), ch);
      }
      write(plan, ch, f, t, shard, parts, new HashMap<>(), runs);
    } catch (IOException e) {
      throw noSpaceOr(e, new Path(Storage.path(outputDir), f.name()).toString(), f);
    }
    return runs;
  }

  /** An I/O error writing output file {@code f} at {@code target}: the user's to fix where the device is full. */
  static IOException noSpaceOr(IOException e, String target, OutputFile f) {
    if (Storage.isNoSpace(e)) {
      throw UserError.onExecutor(Storage.display(target) + ": no space left on the device while writing this "
          + Format.bytes(f.size()) + " file (" + Storage.firstLine(e) + "); free some space or give another output directory");
    }
    return e;
  }

  /** Writes a shard's pieces at their places, taking each run's CRC-32C on the way (nothing is read back). */
  static void write(Plan plan, FileChannel ch, OutputFile f, Plan.Tensor t, Plan.Shard shard, List<ShardPart> parts,
      Map<String, Long> written, Crc32c.Runs crcs) throws IOException {
    if (parts.size() != t.parts().size()) {
      throw new IllegalStateException(t.input().name() + ": shard has " + parts.size() + " parts, plan has " + t.parts().size());
    }
    for (int i = 0; i < parts.size(); i++) {
      ShardPart piece = parts.get(i);
      Plan.StoredPart part = t.parts().get(i);
      if (!piece.key().equals(part.key()) || piece.data().dtype() != part.dtype()) {
        throw new IllegalStateException(f.name() + ": shard part " + piece.key() + " does not match planned " + part);
      }
      ByteBuffer bytes = piece.data().bytes();
      long[] written0 = {0};
      long partStart = f.dataStart() + part.offset();
      Placement.runs(plan, t, shard, i, piece.data().shape(), f.dataStart(), (from, to, length) -> {
        ByteBuffer src = bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        src.position(Math.toIntExact(from)).limit(Math.toIntExact(from + length));
        crcs.add(part.key(), to - partStart, length, Crc32c.of(src));
        writeAt(ch, src, to);
        written0[0] += length;
      });
      written.merge(part.key(), written0[0], Long::sum);
    }
  }

  /**
   * Writes all of {@code b} at {@code position}. A heap buffer goes in slices of at most
   * {@value #HEAP_SLICE} bytes: the JDK copies each write from the heap into a direct buffer it keeps
   * per thread, as large as the largest write, which whole 16 MiB parts would have made memory the
   * process holds beside its heap.
   */
  static void writeAt(FileChannel ch, ByteBuffer b, long position) throws IOException {
    ByteBuffer src = b.duplicate();
    long at = position;
    int end = src.limit();
    while (src.hasRemaining()) {
      if (!src.isDirect()) {
        src.limit(Math.min(end, src.position() + HEAP_SLICE));
      }
      while (src.hasRemaining()) {
        at += ch.write(src, at);
      }
      src.limit(end);
    }
  }

  static final int HEAP_SLICE = 1 << 20;

  @Override
  public void close() throws IOException {
    IOException first = null;
    for (FileChannel ch : open.values()) {
      try {
        ch.close();
      } catch (IOException e) {
        first = first == null ? e : first;
      }
    }
    open.clear();
    if (first != null) {
      throw first;
    }
  }
}
