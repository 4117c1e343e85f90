package shardquant.job;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.Success$;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerApplicationEnd;
import org.apache.spark.scheduler.SparkListenerStageSubmitted;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.storage.RDDInfo;
import shardquant.common.Format;
import shardquant.plan.Plan;

/**
 * Progress on the console while the job runs: tensors and bytes done, rate and time left, from Spark's
 * task-end events on the driver. Each quantize task's partition index names its group of shards in
 * the plan, so tensors are counted done exactly when their last shard is. At most one update every
 * {@code intervalMillis}, and always the last; on a terminal one line redrawn in place, elsewhere one
 * line per update ({@link StatusLine}).
 */
public final class Progress extends SparkListener {
  static final String QUANTIZE_RDD = "shardquant quantize";
  public static final String FIRST_PASS_RDD = "shardquant first pass";
  static final String ASSEMBLE_RDD = "shardquant assemble";
  /** verify's stages: its tasks count as quantize's (a group of shards) and assemble's (an output file). */
  public static final String VERIFY_RDD = "shardquant verify";
  public static final String CHECKSUM_RDD = "shardquant checksums";

  private final Plan plan;
  private final int[][] groups;
  private final String command;
  private final StatusLine line;
  private final long intervalMillis;
  private final long totalBytes;
  private final int totalTensors;
  private final int totalFiles;
  private final Map<Integer, String> stageKinds = new HashMap<>();
  private final Map<Integer, Integer> shardsLeft = new HashMap<>();
  private final long startNanos = System.nanoTime();
  private int failedAttempts;
  private String firstFailure;
  private long bytesDone;
  private int tensorsDone;
  private int filesDone;
  private long lastPrint;
  /** Each successful quantize task's launch time and duration, in milliseconds. */
  private final List<long[]> quantizeTasks = new ArrayList<>();

  public Progress(Plan plan, int[][] groups, int[] files, String command, PrintStream out, long intervalMillis) {
    this(plan, groups, files, command, StatusLine.forConsole(out), intervalMillis);
  }

  Progress(Plan plan, int[][] groups, int[] files, String command, StatusLine line, long intervalMillis) {
    this.plan = plan;
    this.command = command;
    this.groups = groups;
    this.line = line;
    this.intervalMillis = intervalMillis;
    long bytes = 0;
    for (int[] g : groups) {
      for (int s : g) {
        Plan.Shard shard = plan.shards().get(s);
        bytes += plan.inputBytes(shard);
        shardsLeft.merge(shard.tensor(), 1, Integer::sum);
      }
    }
    this.totalBytes = bytes;
    this.totalTensors = shardsLeft.size();
    this.totalFiles = files.length;
  }

  @Override
  public synchronized void onStageSubmitted(SparkListenerStageSubmitted e) {
    scala.collection.Iterator<RDDInfo> it = e.stageInfo().rddInfos().iterator();
    while (it.hasNext()) {
      String name = it.next().name();
      if (name.equals(QUANTIZE_RDD) || name.equals(ASSEMBLE_RDD) || name.equals(FIRST_PASS_RDD)) {
        stageKinds.put(e.stageInfo().stageId(), name);
      } else if (name.equals(VERIFY_RDD) || name.equals(CHECKSUM_RDD)) {
        stageKinds.put(e.stageInfo().stageId(), name.equals(VERIFY_RDD) ? QUANTIZE_RDD : ASSEMBLE_RDD);
      }
    }
  }

  @Override
  public synchronized void onTaskEnd(SparkListenerTaskEnd e) {
    if (e.reason() != Success$.MODULE$) {
      if (failedAttempts++ == 0) {
        String why = e.reason() instanceof org.apache.spark.TaskFailedReason f ? f.toErrorString() : e.reason().toString();
        firstFailure = why.lines().findFirst().orElse("");
      }
      return;
    }
    String kind = stageKinds.get(e.stageId());
    if (QUANTIZE_RDD.equals(kind)) {
      quantizeTasks.add(new long[] {e.taskInfo().launchTime(), e.taskInfo().duration()});
      quantized(e.taskInfo().index());
    } else if (ASSEMBLE_RDD.equals(kind)) {
      assembled();
    }
  }

  /**
   * Task attempts that failed (Spark retried them, or the job failed), with the first one's reason; null
   * when none did.
   */
  public synchronized String failures() {
    return failedAttempts == 0 ? null : failedAttempts + " failed task attempt" + (failedAttempts == 1 ? "" : "s")
        + " (first: " + firstFailure + ")";
  }

  /**
   * How much longer the quantize stage's first {@code slots} tasks to start ran than its median task, summed
   * over those that did: the warm-up (the JIT compiling the kernels, first reads), in milliseconds.
   */
  synchronized long firstWaveExcessMillis(int slots) {
    if (quantizeTasks.isEmpty()) {
      return 0;
    }
    long[] durations = quantizeTasks.stream().mapToLong(t -> t[1]).sorted().toArray();
    long median = durations[durations.length / 2];
    return quantizeTasks.stream().sorted(Comparator.comparingLong(t -> t[0])).limit(Math.max(1, slots))
        .mapToLong(t -> Math.max(0, t[1] - median)).sum();
  }

  /** A failed job ends here too: whatever follows on the console starts on a line of its own. */
  @Override
  public void onApplicationEnd(SparkListenerApplicationEnd e) {
    line.end();
  }

  /** Quantize task {@code index} (its group of shards) succeeded. */
  synchronized void quantized(int index) {
    for (int s : groups[index]) {
      Plan.Shard shard = plan.shards().get(s);
      bytesDone += plan.inputBytes(shard);
      if (shardsLeft.merge(shard.tensor(), -1, Integer::sum) == 0) {
        tensorsDone++;
      }
    }
    print(false);
  }

  /** An assembly task (one output file) succeeded. */
  synchronized void assembled() {
    filesDone++;
    print(filesDone == totalFiles);
  }

  private void print(boolean force) {
    long now = System.currentTimeMillis();
    boolean last = bytesDone == totalBytes && tensorsDone == totalTensors && filesDone == totalFiles;
    if (!force && !last && now - lastPrint < intervalMillis) {
      return;
    }
    lastPrint = now;
    double secs = (System.nanoTime() - startNanos) / 1e9;
    double rate = bytesDone / Math.max(secs, 1e-3);
    String left = bytesDone == 0 ? "?" : Format.duration((totalBytes - bytesDone) / Math.max(rate, 1));
    // Within 80 columns for most models: a terminal wraps a longer line, and a wrapped line cannot be redrawn.
    line.update(String.format("%s: %d/%d tensors, %s/%s, %s/s, %s left, files %d/%d", command, tensorsDone,
        totalTensors, Format.bytes(bytesDone), Format.bytes(totalBytes), Format.bytes((long) rate), left, filesDone,
        totalFiles));
    if (last) {
      line.end();
    }
  }
}
