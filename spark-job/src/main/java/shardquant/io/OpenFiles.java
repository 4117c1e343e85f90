package shardquant.io;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.Path;
import shardquant.common.UserError;

/** Input streams opened by one task (or one command), one per file, closed together. */
public final class OpenFiles implements AutoCloseable {
  private final Configuration conf;
  private final Map<String, FSDataInputStream> open = new HashMap<>();
  private final Map<String, java.nio.channels.FileChannel> local = new HashMap<>();

  public OpenFiles(Configuration conf) {
    this.conf = conf;
  }

  /** The stream of {@code file} (a Hadoop path string), opened on first use. */
  public FSDataInputStream open(String file) throws IOException {
    FSDataInputStream s = open.get(file);
    if (s == null) {
      Path p = new Path(file);
      try {
        s = Storage.fs(p, conf).open(p);
      } catch (FileNotFoundException e) {
        throw UserError.onExecutor(Storage.display(file) + ": no such file (removed since the job was planned?)");
      }
      open.put(file, s);
    }
    return s;
  }

  /**
   * Reads {@code into.remaining()} bytes of {@code file} at {@code position}. A local file is read
   * straight into the buffer (an Arrow buffer, on executors) through a FileChannel; Hadoop's local
   * streams take no byte buffers, and other file systems go through a small heap buffer.
   */
  public void readFully(String file, long position, java.nio.ByteBuffer into) throws IOException {
    if (!file.startsWith("file:")) {
      Storage.readFully(open(file), position, into);
      return;
    }
    java.nio.channels.FileChannel ch = local.get(file);
    if (ch == null) {
      try {
        ch = java.nio.channels.FileChannel.open(java.nio.file.Path.of(java.net.URI.create(file)),
            java.nio.file.StandardOpenOption.READ);
      } catch (java.nio.file.NoSuchFileException e) {
        throw UserError.onExecutor(Storage.display(file) + ": no such file (removed since the job was planned?)");
      }
      local.put(file, ch);
    }
    long at = position;
    while (into.hasRemaining()) {
      int n = ch.read(into, at);
      if (n < 0) {
        throw new java.io.EOFException(Storage.display(file) + " ends at byte " + at);
      }
      at += n;
    }
  }

  @Override
  public void close() throws IOException {
    for (FSDataInputStream s : open.values()) {
      s.close();
    }
    for (java.nio.channels.FileChannel c : local.values()) {
      c.close();
    }
    open.clear();
    local.clear();
  }
}
