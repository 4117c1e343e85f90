package shardquant.common;

import org.apache.spark.SparkConf;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;

/**
 * Test hook: {@code spark.shardquant.test.pauseAt=quantize|assembly|commit} stops the job at that point
 * (the first quantize task after its first shard; the last output file's assembly just before its
 * rename, while the others go on; the driver after every file is renamed, before the model files, the
 * index and {@code _SUCCESS}), says so on stderr, and waits there, so a test can kill the process with
 * SIGKILL at a known point. Off unless set.
 */
public final class TestPause {
  public static final String CONF = "spark.shardquant.test.pauseAt";
  private static final long WAIT_MILLIS = 120_000;

  private TestPause() {}

  /** On an executor: pauses at {@code point} if the job's conf asks for it and {@code here} (first attempt only). */
  public static void onExecutor(String point, boolean here) {
    SparkEnv env = SparkEnv.get();
    TaskContext task = TaskContext.get();
    if (here && env != null && task != null && task.attemptNumber() == 0 && point.equals(env.conf().get(CONF, null))) {
      pause(point);
    }
  }

  /** On the driver. */
  public static void onDriver(String point, SparkConf conf) {
    if (point.equals(conf.get(CONF, null))) {
      pause(point);
    }
  }

  private static void pause(String point) {
    System.err.println("shardquant test: paused at " + point);
    System.err.flush();
    try {
      Thread.sleep(WAIT_MILLIS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
