package shardquant.commit;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.time.Instant;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import shardquant.common.LocalProcess;
import shardquant.common.UserError;
import shardquant.io.Storage;

/**
 * One job per output directory: a hidden claim file ({@value #NAME}) created if absent, atomically, before
 * the job touches anything there, holding the job id, the input fingerprint, and the host, process and
 * start time of the driver that holds it. A second job finds it and is refused (exit 2) naming the holder.
 * A rerun of the same job takes over a claim whose holder is gone (a crash or kill leaves the claim
 * behind), but not one held by a live process on this host. Closing releases the claim: at commit, or when
 * the job stops with an error.
 *
 * <p>Create-if-absent is atomic on local file systems ({@code O_CREAT|O_EXCL}) and HDFS; object stores
 * such as S3A check and then write, so two jobs started within the same instant there may both pass.
 */
public final class OutputClaim implements AutoCloseable {
  public static final String NAME = ".shardquant-claim.json";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final FileSystem fs;
  private final Path file;
  private boolean held;

  private OutputClaim(FileSystem fs, Path file) {
    this.fs = fs;
    this.file = file;
    this.held = true;
  }

  /** Claims {@code dir} (made if missing) for job {@code jobId}, or throws the user's error naming the holder. */
  static OutputClaim take(FileSystem fs, Path dir, String userPath, String jobId, String fingerprint, String command)
      throws IOException {
    if (fs.exists(dir) && !fs.getFileStatus(dir).isDirectory()) {
      throw new UserError(userPath + ": the output path is a file; give a directory (new or from an earlier run of this job)");
    }
    try {
      if (!fs.mkdirs(dir)) {
        throw new UserError(userPath + ": cannot create the output directory");
      }
    } catch (IOException e) {
      throw new UserError(userPath + ": cannot create the output directory (" + Storage.firstLine(e) + ")");
    }
    Path file = new Path(dir, NAME);
    ObjectNode me = JSON.createObjectNode();
    me.put("job", jobId);
    me.put("command", command);
    me.put("input_fingerprint", fingerprint);
    me.put("host", host());
    me.put("pid", ProcessHandle.current().pid());
    me.put("process_start", LocalProcess.startOf(ProcessHandle.current()));
    me.put("claimed", Instant.now().toString());
    byte[] content = (me.toString() + "\n").getBytes(StandardCharsets.UTF_8);
    for (int attempt = 0; attempt < 2; attempt++) {
      if (createIfAbsent(fs, file, content, userPath)) {
        return new OutputClaim(fs, file);
      }
      JsonNode holder = read(fs, file);
      if (holder == null) {
        continue; // released between our create and our read: try once more
      }
      String who = describe(holder);
      if (!jobId.equals(holder.path("job").asText())) {
        throw new UserError(userPath + ": another shardquant job holds this output directory (" + who + "); give another"
            + " output directory, or if that job is no longer running, remove its files and " + NAME + " from it");
      }
      if (alive(holder)) {
        throw new UserError(userPath + ": this job is already running into this output directory (" + who + ")");
      }
      fs.delete(file, false); // our own job's claim, left by a run that crashed or was killed: take it over
    }
    throw new UserError(userPath + ": could not claim the output directory: " + NAME + " keeps changing; is another job"
        + " starting there?");
  }

  private static boolean createIfAbsent(FileSystem fs, Path file, byte[] content, String userPath) throws IOException {
    try {
      if (Storage.isLocal(fs)) {
        java.nio.file.Path p = java.nio.file.Path.of(file.toUri());
        Files.write(p, content, java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.StandardOpenOption.WRITE);
        return true;
      }
      if (fs.exists(file)) {
        return false;
      }
      try (FSDataOutputStream out = fs.create(file, false)) {
        out.write(content);
        out.hsync();
      }
      return true;
    } catch (FileAlreadyExistsException | org.apache.hadoop.fs.FileAlreadyExistsException e) {
      return false;
    } catch (IOException e) {
      throw new UserError(userPath + ": cannot write into the output directory (" + Storage.firstLine(e) + "); give a writable"
          + " directory");
    }
  }

  private static JsonNode read(FileSystem fs, Path file) throws IOException {
    try {
      return JSON.readTree(Storage.readString(fs, file));
    } catch (FileNotFoundException e) {
      return null;
    } catch (IOException e) {
      return JSON.createObjectNode(); // unreadable or half-written: a holder we cannot name
    }
  }

  /** The holder is alive only as far as this machine can tell: a live process of this host ({@link LocalProcess#alive}). */
  private static boolean alive(JsonNode holder) {
    return host().equals(holder.path("host").asText())
        && LocalProcess.alive(holder.path("pid").asLong(-1), holder.path("process_start").asText());
  }

  static String describe(JsonNode holder) {
    String job = holder.path("job").asText("?");
    return holder.path("command").asText("job") + " " + job.substring(0, Math.min(12, job.length())) + " on "
        + holder.path("host").asText("?") + ", pid " + holder.path("pid").asText("?") + ", since "
        + holder.path("claimed").asText("?");
  }

  private static String host() {
    try {
      return InetAddress.getLocalHost().getHostName();
    } catch (IOException e) {
      return "localhost";
    }
  }

  /** Releases the claim (closing twice is harmless). */
  @Override
  public void close() throws IOException {
    if (held) {
      held = false;
      fs.delete(file, false);
    }
  }
}
