package shardquant.job;

import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.nio.file.AccessDeniedException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FsStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.util.Progressable;

/**
 * A local file system under the scheme {@code faulty:} that fails the way real storage does, for tests of
 * what a user sees: read-only ({@code Permission denied} on every create), a device that fills up after
 * some bytes ({@code No space left on device} mid-write), and a reported free space. Set the static
 * fields before a job (local mode runs executors in this JVM); register it with
 * {@code --conf spark.hadoop.fs.faulty.impl=shardquant.job.FaultyFs}.
 */
public class FaultyFs extends RawLocalFileSystem {
  public static final String[] CONF = {"--conf", "spark.hadoop.fs.faulty.impl=" + FaultyFs.class.getName(), "--conf",
      "spark.hadoop.fs.faulty.impl.disable.cache=true"};
  static volatile boolean readOnly;
  static volatile long bytesUntilFull = Long.MAX_VALUE;
  static volatile long reportedFree = -1;

  static void reset() {
    readOnly = false;
    bytesUntilFull = Long.MAX_VALUE;
    reportedFree = -1;
  }

  @Override
  public URI getUri() {
    return URI.create("faulty:///");
  }

  @Override
  public String getScheme() {
    return "faulty";
  }

  @Override
  public void initialize(URI uri, Configuration conf) throws IOException {
    super.initialize(URI.create("file:///"), conf);
  }

  @Override
  public boolean mkdirs(Path f) throws IOException {
    return mkdirs(f, FsPermission.getDirDefault());
  }

  @Override
  public boolean mkdirs(Path f, FsPermission permission) throws IOException {
    if (readOnly && !pathToFile(f).exists()) {
      throw new AccessDeniedException(f.toString(), null, "Permission denied");
    }
    return super.mkdirs(f);
  }

  @Override
  public FSDataOutputStream create(Path f, FsPermission permission, boolean overwrite, int bufferSize, short replication,
      long blockSize, Progressable progress) throws IOException {
    if (readOnly) {
      throw new AccessDeniedException(f.toString(), null, "Permission denied");
    }
    FSDataOutputStream real = super.create(f, permission, overwrite, bufferSize, replication, blockSize, progress);
    return new FSDataOutputStream(new OutputStream() {
      @Override
      public void write(int b) throws IOException {
        write(new byte[] {(byte) b}, 0, 1);
      }

      @Override
      public void write(byte[] b, int off, int len) throws IOException {
        synchronized (FaultyFs.class) {
          if (len > bytesUntilFull) {
            throw new IOException("No space left on device");
          }
          bytesUntilFull -= len;
        }
        real.write(b, off, len);
      }

      @Override
      public void close() throws IOException {
        real.close();
      }
    }, null);
  }

  @Override
  public FSDataOutputStream create(Path f, boolean overwrite, int bufferSize, short replication, long blockSize,
      Progressable progress) throws IOException {
    return create(f, FsPermission.getFileDefault(), overwrite, bufferSize, replication, blockSize, progress);
  }

  @Override
  public FsStatus getStatus(Path p) throws IOException {
    FsStatus s = super.getStatus(p);
    return reportedFree < 0 ? s : new FsStatus(s.getCapacity(), s.getCapacity() - reportedFree, reportedFree);
  }
}
