package shardquant.job;

import java.io.PrintStream;
import java.util.HashMap;
import java.util.Map;
import org.apache.spark.Success$;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerStageSubmitted;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.storage.RDDInfo;
import shardquant.plan.Plan;

/**
 * Progress on the console while the job runs: tensors and bytes done, rate and time left, from Spark's
 * task-end events on the driver. Each quantize task's partition index names its group of shards in
 * the plan, so tensors are counted done exactly when their last shard is. At most one line every
 * {@code intervalMillis}, and always the last.
 */
final class Progress extends SparkListener {
  static final String QUANTIZE_RDD = "shardquant quantize";
  static final String ABSMAX_RDD = "shardquant nf4 absmax";
  static final String ASSEMBLE_RDD = "shardquant assemble";

  private final Plan plan;
  private final int[][] groups;
  private final String command;
  private final PrintStream out;
  private final long intervalMillis;
  private final long totalBytes;
  private final int totalTensors;
  private final int totalFiles;
  private final Map<Integer, String> stageKinds = new HashMap<>();
  private final Map<Integer, Integer> shardsLeft = new HashMap<>();
  private final long startNanos = System.nanoTime();
  private long bytesDone;
  private int tensorsDone;
  private int filesDone;
  private long lastPrint;

  Progress(Plan plan, int[][] groups, int[] files, String command, PrintStream out, long intervalMillis) {
    this.plan = plan;
    this.command = command;
    this.groups = groups;
    this.out = out;
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
      if (name.equals(QUANTIZE_RDD) || name.equals(ASSEMBLE_RDD) || name.equals(ABSMAX_RDD)) {
        stageKinds.put(e.stageInfo().stageId(), name);
      }
    }
  }

  @Override
  public synchronized void onTaskEnd(SparkListenerTaskEnd e) {
    if (e.reason() != Success$.MODULE$) {
      return;
    }
    String kind = stageKinds.get(e.stageId());
    if (QUANTIZE_RDD.equals(kind)) {
      for (int s : groups[e.taskInfo().index()]) {
        Plan.Shard shard = plan.shards().get(s);
        bytesDone += plan.inputBytes(shard);
        if (shardsLeft.merge(shard.tensor(), -1, Integer::sum) == 0) {
          tensorsDone++;
        }
      }
      print(false);
    } else if (ASSEMBLE_RDD.equals(kind)) {
      filesDone++;
      print(filesDone == totalFiles);
    }
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
    out.printf("%s: %d/%d tensors, %s/%s, %s/s, %s left, files %d/%d written%n", command, tensorsDone, totalTensors,
        Format.bytes(bytesDone), Format.bytes(totalBytes), Format.bytes((long) rate), left, filesDone, totalFiles);
    out.flush();
  }
}
