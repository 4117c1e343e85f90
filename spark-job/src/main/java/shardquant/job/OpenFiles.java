package shardquant.job;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.Path;

/** Input streams opened by one task (or one command), one per file, closed together. */
public final class OpenFiles implements AutoCloseable {
  private final Configuration conf;
  private final Map<String, FSDataInputStream> open = new HashMap<>();

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

  @Override
  public void close() throws IOException {
    for (FSDataInputStream s : open.values()) {
      s.close();
    }
    open.clear();
  }
}
