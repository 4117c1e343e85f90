package shardquant.io;

import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkEnv;
import org.apache.spark.deploy.SparkHadoopUtil;
import shardquant.common.UserError;
import shardquant.kernels.safetensors.SafetensorsHeader;

/**
 * Files through Hadoop's FileSystem API, so inputs and outputs may be local paths or any Hadoop URI
 * (hdfs://, s3a://, ...). Local files use Hadoop's raw local file system: the checksumming one would
 * put {@code .crc} files beside our outputs.
 */
public final class Storage {
  private Storage() {}

  /** A user's path as a Hadoop path: a URI as given, a plain path made absolute (file:). */
  public static Path path(String userPath) {
    URI u = URI.create(userPath.replace(" ", "%20"));
    if (u.getScheme() == null || u.getScheme().length() == 1) {
      return new Path(new File(userPath).getAbsoluteFile().toURI());
    }
    return new Path(userPath);
  }

  /** A path as a user reads it in a message: local files without their {@code file:} scheme. */
  public static String display(String path) {
    return path.startsWith("file:") ? new Path(path).toUri().getPath() : path;
  }

  /** The Hadoop configuration on an executor (the driver's, with spark.hadoop.* settings applied). */
  public static Configuration executorConf() {
    return SparkHadoopUtil.get().newConfiguration(SparkEnv.get().conf());
  }

  public static FileSystem fs(Path p, Configuration conf) {
    try {
      FileSystem fs = p.getFileSystem(conf);
      return fs instanceof LocalFileSystem local ? local.getRaw() : fs;
    } catch (IOException e) {
      throw new UserError(p + ": cannot open its file system: " + e.getMessage(), e);
    }
  }

  public static boolean isLocal(FileSystem fs) {
    return "file".equals(fs.getUri().getScheme());
  }

  /** The validated safetensors header of {@code p}, reading only the header bytes. */
  public static SafetensorsHeader readHeader(FileSystem fs, Path p) throws IOException {
    long size = fs.getFileStatus(p).getLen();
    try (FSDataInputStream in = fs.open(p)) {
      return SafetensorsHeader.read(display(p.toString()), size, (position, into) -> readFully(in, position, into));
    }
  }

  /** Reads {@code into.remaining()} bytes at {@code position} (through a small heap buffer: not every stream reads into direct buffers). */
  public static void readFully(FSDataInputStream in, long position, ByteBuffer into) throws IOException {
    if (into.hasArray()) {
      int n = into.remaining();
      in.readFully(position, into.array(), into.arrayOffset() + into.position(), n);
      into.position(into.position() + n);
      return;
    }
    byte[] chunk = new byte[(int) Math.min(into.remaining(), 1 << 20)];
    long at = position;
    while (into.hasRemaining()) {
      int n = Math.min(chunk.length, into.remaining());
      in.readFully(at, chunk, 0, n);
      into.put(chunk, 0, n);
      at += n;
    }
  }

  public static String readString(FileSystem fs, Path p) throws IOException {
    try (FSDataInputStream in = fs.open(p)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  /** Writes a small file under a hidden temporary name in its directory, then renames it into place. */
  public static void writeAtomically(FileSystem fs, Path target, String content) throws IOException {
    fs.mkdirs(target.getParent());
    Path temp = new Path(target.getParent(), "." + target.getName() + ".tmp-" + java.util.UUID.randomUUID());
    try {
      try (FSDataOutputStream out = fs.create(temp, true)) {
        out.write(content.getBytes(StandardCharsets.UTF_8));
        out.hsync();
      }
      replace(fs, temp, target);
    } finally {
      fs.delete(temp, false);
    }
  }

  /** Copies {@code from} to {@code target} (any two file systems), under a hidden temporary name then renamed into place. */
  public static void copyAtomically(FileSystem fromFs, Path from, FileSystem fs, Path target) throws IOException {
    fs.mkdirs(target.getParent());
    Path temp = new Path(target.getParent(), "." + target.getName() + ".tmp-" + java.util.UUID.randomUUID());
    try {
      try (FSDataInputStream in = fromFs.open(from); FSDataOutputStream out = fs.create(temp, true)) {
        in.transferTo(out);
        out.hsync();
      }
      replace(fs, temp, target);
    } finally {
      fs.delete(temp, false);
    }
  }

  /** The SHA-256 of a file's bytes, in hex, streamed. */
  public static String sha256(FileSystem fs, Path p) throws IOException {
    MessageDigest d = sha256();
    byte[] buf = new byte[1 << 16];
    try (FSDataInputStream in = fs.open(p)) {
      for (int n; (n = in.read(buf)) > 0; ) {
        d.update(buf, 0, n);
      }
    }
    return HexFormat.of().formatHex(d.digest());
  }

  public static String sha256(byte[] bytes) {
    return HexFormat.of().formatHex(sha256().digest(bytes));
  }

  /** A new SHA-256 digest (every JVM has one). */
  public static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Whether a write failed because the device or quota is full (ENOSPC, EDQUOT), in this exception or its causes. */
  public static boolean isNoSpace(Throwable e) {
    for (Throwable c = e; c != null; c = c.getCause()) {
      String m = String.valueOf(c.getMessage());
      if (m.contains("No space left on device") || m.contains("Disk quota exceeded") || m.contains("ENOSPC")) {
        return true;
      }
    }
    return false;
  }

  /** An exception's message, first line only, for a one-line error. */
  public static String firstLine(Throwable e) {
    return String.valueOf(e.getMessage()).lines().findFirst().orElse(e.toString());
  }

  /** Renames {@code from} onto {@code to}, replacing it (Hadoop's rename refuses an existing target). */
  public static void replace(FileSystem fs, Path from, Path to) throws IOException {
    if (isLocal(fs)) {
      java.nio.file.Files.move(java.nio.file.Path.of(from.toUri()), java.nio.file.Path.of(to.toUri()),
          java.nio.file.StandardCopyOption.ATOMIC_MOVE, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
      return;
    }
    fs.delete(to, false);
    if (!fs.rename(from, to)) {
      throw new IOException("could not rename " + from + " to " + to);
    }
  }
}
