package shardquant.job;

import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import shardquant.common.UserError;

/**
 * The job's Spark context, started so that a crash leaves little behind: embedded Spark's scratch lives
 * in a folder of the job's own that is removed when the context stops and, after a crash, by the next
 * run ({@link Scratch}). A standalone master that never registers the application (something else
 * answers at its address) is the user's error, not a stopped context that fails the job later. (A
 * master that cannot be reached at all is refused before, by {@link MasterCheck}.)
 */
public final class JobSparkContext extends JavaSparkContext {
  /** Test hook: the driver halts (as if killed) when the first task ends, with Spark and its scratch in use. */
  public static final String HALT_WHILE_RUNNING_CONF = "spark.shardquant.test.haltWhileRunning";
  /** The application id Spark falls back to when a standalone master never registered the application. */
  private static final String UNREGISTERED_ID = "spark-application-";

  private final Scratch scratch;

  private JobSparkContext(SparkContext sc, Scratch scratch) {
    super(sc);
    this.scratch = scratch;
  }

  /** Starts Spark with {@code conf} (which may gain {@code spark.local.dir}); close it to stop Spark and remove its scratch. */
  public static JobSparkContext start(SparkConf conf) {
    Scratch scratch = Scratch.forJob(conf);
    SparkContext sc;
    try {
      // Spark caches its driver folder (spark-*, under the first local dir it saw) once per JVM; a later
      // job in this JVM must not reuse an earlier job's scratch folder, removed by now.
      org.apache.spark.util.Utils$.MODULE$.clearLocalRootDirs();
      sc = scratch.dir() == null ? new SparkContext(conf) : quietAboutLocalDir(() -> new SparkContext(conf));
    } catch (RuntimeException | Error e) {
      scratch.close();
      throw e;
    }
    JobSparkContext context = new JobSparkContext(sc, scratch);
    String master = conf.get("spark.master");
    if (master.startsWith("spark://") && sc.applicationId().startsWith(UNREGISTERED_ID)) {
      // The master answered TCP but never registered the application: Spark's client gave up after 3 x 20 s.
      context.close();
      throw new UserError("the Spark master " + master + " did not register the application (Spark's standalone client "
          + "gave up after 3 tries, 20 s apart); check that --master is a Spark master's URL (its port, 7077 by default, "
          + "not its web UI's) and the master's log");
    }
    if (Boolean.parseBoolean(conf.get(HALT_WHILE_RUNNING_CONF, "false"))) {
      sc.addSparkListener(new SparkListener() {
        @Override
        public void onTaskEnd(SparkListenerTaskEnd taskEnd) {
          System.err.println("halting while running (" + HALT_WHILE_RUNNING_CONF + ")");
          System.err.flush();
          Runtime.getRuntime().halt(137);
        }
      });
    }
    return context;
  }

  /**
   * Runs {@code start} with Spark's SparkConf logger at ERROR: whenever spark.local.dir is set, SparkConf
   * warns that a cluster manager would override it, which in local mode (the only place shardquant sets
   * it) no cluster manager does. Its other warning at start is about standalone cores settings.
   */
  private static SparkContext quietAboutLocalDir(java.util.function.Supplier<SparkContext> start) {
    String name = SparkConf.class.getName();
    org.apache.logging.log4j.Level before;
    try {
      before = org.apache.logging.log4j.LogManager.getLogger(name).getLevel();
      org.apache.logging.log4j.core.config.Configurator.setLevel(name, org.apache.logging.log4j.Level.ERROR);
    } catch (LinkageError | RuntimeException e) { // another logging backend: its warning stands
      return start.get();
    }
    try {
      return start.get();
    } finally {
      org.apache.logging.log4j.core.config.Configurator.setLevel(name, before);
    }
  }

  /** Stops Spark, then removes the job's scratch folder (Spark has deleted its block manager's files by then). */
  @Override
  public void stop() {
    try {
      super.stop();
    } finally {
      if (scratch.dir() != null) {
        org.apache.spark.util.Utils$.MODULE$.clearLocalRootDirs(); // it names a folder about to go
      }
      scratch.close();
    }
  }
}
