package shardquant.job;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.SparkConf;
import shardquant.common.Format;
import shardquant.common.LocalProcess;

/**
 * Embedded Spark's scratch space (its {@code spark.local.dir}: {@code blockmgr-*} with the shuffle
 * files, about the size of the output, and {@code spark-*}) in a folder of this job's own,
 * {@code <java.io.tmpdir>/shardquant-scratch/<pid>-<random>/}, so that a driver killed with
 * {@code kill -9} (which runs neither Spark's shutdown hooks nor this class's) leaves it where the next
 * run finds it. The folder's {@code owner} file names this JVM: its pid and its start time, so that a
 * later process given the same pid is not taken for the owner. Every run first removes the sibling
 * folders whose owner is gone; a job removes its own when its Spark context stops, and a shutdown hook
 * does if the JVM exits first.
 *
 * <p>Only in local mode, and only when the user has not chosen the scratch space ({@code spark.local.dir}
 * set, or the {@code SPARK_LOCAL_DIRS} / {@code SPARK_EXECUTOR_DIRS} variables Spark prefers to it). On a
 * cluster the executors' scratch is the workers' (their {@code SPARK_LOCAL_DIRS}), which Spark cleans.
 */
public final class Scratch implements AutoCloseable {
  /** The folder under java.io.tmpdir that holds every job's scratch folder. */
  public static final String PARENT = "shardquant-scratch";
  /** A job's scratch folder: {@code <pid>-<random hex>}. */
  static final Pattern FOLDER = Pattern.compile("(\\d+)-[0-9a-f]{8,}");
  static final String OWNER_FILE = "owner";
  private static final String LOCAL_DIR = "spark.local.dir";
  /** Hadoop's shutdown hook priority for Spark's own hooks (FileSystem.SHUTDOWN_HOOK_PRIORITY + 30); ours runs after them. */
  private static final int HOOK_PRIORITY = 35;
  private static final System.Logger LOG = System.getLogger(Scratch.class.getName());
  private static final SecureRandom RANDOM = new SecureRandom();

  private final Path dir;
  private final Runnable hook;
  private boolean closed;

  private Scratch(Path dir, Runnable hook) {
    this.dir = dir;
    this.hook = hook;
  }

  /** The job's scratch folder, or null where Spark's own choice stands. */
  public Path dir() {
    return dir;
  }

  /**
   * For a job about to start Spark with {@code conf}: removes the scratch folders of ended runs under
   * java.io.tmpdir and, in local mode without a user's choice of scratch space, creates this job's and
   * sets {@code spark.local.dir} to it. Close the result (after the Spark context has stopped) to remove it.
   */
  public static Scratch forJob(SparkConf conf) {
    return forJob(conf, Path.of(System.getProperty("java.io.tmpdir")), System.getenv());
  }

  static Scratch forJob(SparkConf conf, Path tmpdir, Map<String, String> env) {
    Path parent = tmpdir.toAbsolutePath().resolve(PARENT);
    sweep(parent);
    boolean local = conf.get("spark.master", "").startsWith("local");
    if (!local || conf.contains(LOCAL_DIR) || set(env, "SPARK_LOCAL_DIRS") || set(env, "SPARK_EXECUTOR_DIRS")) {
      return new Scratch(null, null);
    }
    Path dir;
    try {
      dir = create(parent);
    } catch (IOException e) {
      // A tmpdir we cannot write to (another user's shardquant-scratch, say): Spark's default stands.
      LOG.log(System.Logger.Level.WARNING, "cannot create a folder under " + parent + " (" + e
          + "); Spark's scratch goes to " + tmpdir + " and a killed run leaves it there");
      return new Scratch(null, null);
    }
    conf.set(LOCAL_DIR, dir.toString());
    Runnable hook = () -> delete(dir);
    try {
      org.apache.hadoop.util.ShutdownHookManager.get().addShutdownHook(hook, HOOK_PRIORITY);
    } catch (IllegalStateException e) { // the JVM is already shutting down
      delete(dir);
      throw e;
    }
    return new Scratch(dir, hook);
  }

  private static boolean set(Map<String, String> env, String name) {
    String v = env.get(name);
    return v != null && !v.isBlank();
  }

  /** This JVM's folder, owner file written before Spark puts anything in it. */
  private static Path create(Path parent) throws IOException {
    Files.createDirectories(parent);
    ProcessHandle self = ProcessHandle.current();
    byte[] random = new byte[6];
    RANDOM.nextBytes(random);
    Path dir = parent.resolve(self.pid() + "-" + HexFormat.of().formatHex(random));
    try {
      Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
    } catch (UnsupportedOperationException e) { // not a POSIX file system
      Files.createDirectory(dir);
    }
    String owner = "pid=" + self.pid() + "\nstart=" + LocalProcess.startOf(self) + "\n";
    Files.writeString(dir.resolve(OWNER_FILE), owner, StandardCharsets.UTF_8);
    return dir;
  }

  /**
   * Removes the folders under {@code parent} whose owner process has ended: no process has its pid, or
   * the one that has it started at another time than the owner file says. A folder whose owner file is
   * not written yet (its owner is creating it) belongs to its pid while that process lives. Returns
   * the folders removed.
   */
  static List<Path> sweep(Path parent) {
    List<Path> removed = new ArrayList<>();
    if (!Files.isDirectory(parent)) {
      return removed;
    }
    long bytes = 0;
    try (DirectoryStream<Path> s = Files.newDirectoryStream(parent)) {
      for (Path p : s) {
        Matcher m = FOLDER.matcher(p.getFileName().toString());
        if (m.matches() && Files.isDirectory(p, java.nio.file.LinkOption.NOFOLLOW_LINKS) && !ownerAlive(p, m.group(1))) {
          long size = delete(p);
          if (!Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            removed.add(p);
            bytes += size;
          }
        }
      }
    } catch (IOException e) {
      LOG.log(System.Logger.Level.DEBUG, "cannot list " + parent, e);
    }
    if (!removed.isEmpty()) {
      LOG.log(System.Logger.Level.INFO, "removed " + removed.size() + " Spark scratch folder"
          + (removed.size() == 1 ? "" : "s") + " of ended runs (" + Format.bytes(bytes) + ") from " + parent);
    }
    return removed;
  }

  /** Whether the process that made {@code folder} (pid from its name) is still running. */
  static boolean ownerAlive(Path folder, String pidText) {
    long pid;
    try {
      pid = Long.parseLong(pidText);
    } catch (NumberFormatException e) {
      return true; // not ours to judge
    }
    Properties owner = new Properties();
    try (var r = Files.newBufferedReader(folder.resolve(OWNER_FILE), StandardCharsets.UTF_8)) {
      owner.load(r);
    } catch (IOException e) {
      return LocalProcess.alive(pid, ""); // being created by that process, or unreadable: the pid decides
    }
    return LocalProcess.alive(pid, owner.getProperty("start", ""));
  }

  /** Deletes {@code dir} and everything in it, as far as it can (never following links); returns the bytes removed. */
  static long delete(Path dir) {
    long[] bytes = {0};
    try {
      Files.walkFileTree(dir, new SimpleFileVisitor<>() {
        @Override
        public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) {
          try {
            Files.delete(file);
            bytes[0] += attrs.size();
          } catch (IOException e) {
            // left for the next sweep
          }
          return FileVisitResult.CONTINUE;
        }

        @Override
        public FileVisitResult visitFileFailed(Path file, IOException e) {
          return FileVisitResult.CONTINUE;
        }

        @Override
        public FileVisitResult postVisitDirectory(Path d, IOException e) {
          try {
            Files.delete(d);
          } catch (IOException ignored) {
            // not empty (a file could not go) or already gone
          }
          return FileVisitResult.CONTINUE;
        }
      });
    } catch (NoSuchFileException e) {
      // removed by another run's sweep
    } catch (IOException e) {
      LOG.log(System.Logger.Level.DEBUG, "cannot remove " + dir, e);
    }
    return bytes[0];
  }

  /** Removes this job's folder (Spark's context must have stopped) and its shutdown hook. */
  @Override
  public synchronized void close() {
    if (dir == null || closed) {
      return;
    }
    closed = true;
    try {
      org.apache.hadoop.util.ShutdownHookManager.get().removeShutdownHook(hook);
    } catch (IllegalStateException e) {
      // shutting down: the hook runs anyway, and deleting twice is harmless
    }
    delete(dir);
  }
}
