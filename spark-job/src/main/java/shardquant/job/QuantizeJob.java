package shardquant.job;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.deploy.SparkHadoopUtil;
import scala.Tuple2;
import shardquant.commit.OutputClaim;
import shardquant.commit.OutputDir;
import shardquant.common.Format;
import shardquant.common.TensorReport;
import shardquant.common.TestPause;
import shardquant.common.UserError;
import shardquant.exec.FileAssembler;
import shardquant.exec.FileResult;
import shardquant.exec.ShardQuantizer;
import shardquant.exec.ShardWriter;
import shardquant.exec.TaskGpu;
import shardquant.io.Storage;
import shardquant.kernels.select.Backends;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.Recipe;
import shardquant.plan.InputCheckpoint;
import shardquant.plan.ModelFiles;
import shardquant.plan.QuantizationConfig;
import shardquant.plan.Plan;
import shardquant.plan.Planner;

/**
 * The quantize job on the driver: plan from headers, ready the output directory, run the Spark stages
 * (the recipe's first pass where it has one, then quantize and assemble), and commit. The repack job is the same flow with
 * its own plan. Errors in the user's input surface as
 * {@link UserError}, from the driver or from any executor.
 */
public final class QuantizeJob {
  private static final System.Logger LOG = System.getLogger(QuantizeJob.class.getName());
  /** Embedded Spark when no master is given: all cores, and Spark's retries (local mode otherwise never retries a task). */
  public static final String LOCAL_MASTER = "local[*,4]";
  /** Test hook: the driver halts (as if killed) after the files are written and before the commit. */
  public static final String HALT_BEFORE_COMMIT_CONF = "spark.shardquant.test.haltBeforeCommit";
  /**
   * {@code false}: the shards travel through Spark's shuffle to their file's assembler, as on a cluster,
   * even where the tasks could write them into the output files themselves (local mode, local output).
   */
  public static final String WRITE_IN_TASKS_CONF = "spark.shardquant.writeInTasks";

  private QuantizeJob() {}

  /** How the job went. {@code verified} false: some dequantized value was not finite (exit 3). */
  public record Result(Plan plan, List<TensorReport> reports, int filesKept, int filesWritten, long wallNanos,
      boolean verified, String master, Phases phases) {
    public Result(Plan plan, List<TensorReport> reports, int filesKept, int filesWritten, long wallNanos, boolean verified,
        String master) {
      this(plan, reports, filesKept, filesWritten, wallNanos, verified, master, Phases.NONE);
    }
  }

  /**
   * Where a run's wall time went, for {@code bench job}: the driver's planning (headers, output directory)
   * before Spark, Spark's start, the stages (first pass, quantize, assemble) and the commit; and of the
   * stages' task time, how much the quantize stage's first wave of tasks spent above the median task
   * (the JIT compiling the kernels, mostly). Nanoseconds; -1 where a run had no such phase.
   */
  public record Phases(long planNanos, long sparkStartNanos, long stagesNanos, long commitNanos, long warmUpNanos) {
    static final Phases NONE = new Phases(-1, -1, -1, -1, -1);
  }

  public static Result run(JobOptions o, PrintStream console) throws IOException {
    return run(o, "quantize", input -> Planner.plan(input, o.spec()), console);
  }

  /**
   * {@code shardquant repack}: the int4 tensors of {@code o.input()} converted into {@code layout} without
   * re-quantizing, through the same stages and commit as quantize ({@code o.spec()} gives the sizes only).
   */
  public static Result repack(JobOptions o, Int4Layout layout, PrintStream console) throws IOException {
    if (Storage.path(o.input()).equals(Storage.path(o.output()))) {
      throw new UserError(o.output() + ": is the input checkpoint; repack writes a new checkpoint, give another output directory");
    }
    return run(o, "repack", input -> Planner.planRepack(input, layout, o.spec().shardBytes(), o.spec().outputFileBytes()),
        console);
  }

  /** The driver's flow, shared by quantize and repack: plan, ready the output, run the stages, commit. */
  private static Result run(JobOptions o, String command, Function<InputCheckpoint, Plan> planner, PrintStream console)
      throws IOException {
    long start = System.nanoTime();
    // Before any SparkConf: Spark's logging setup would swallow the backend's one line on the console.
    checkBackend(o.backend(), o.master() != null ? o.master() : System.getProperty("spark.master", LOCAL_MASTER),
        Plan.recipes(o.spec().config()));
    SparkConf conf = sparkConf(o, command);
    Configuration hadoop = SparkHadoopUtil.get().newConfiguration(conf);
    InputCheckpoint input = InputCheckpoint.read(o.input(), hadoop);
    ModelFiles model = ModelFiles.read(input, hadoop);
    if (command.equals("quantize")) {
      model.refuseQuantized();
    }
    Plan plan = planner.apply(input);
    String configText = model.configText() == null ? null : model.outputConfig(QuantizationConfig.of(plan));
    OutputDir out = OutputDir.of(o.output(), hadoop);
    try (OutputClaim claim = out.claim(plan, command)) {
      return run(o, command, plan, model, configText, out, conf, hadoop, console, start);
    }
  }

  /** The rest of the driver's flow, with the output directory claimed by this job. */
  private static Result run(JobOptions o, String command, Plan plan, ModelFiles model, String configText, OutputDir out,
      SparkConf conf, Configuration hadoop, PrintStream console, long start) throws IOException {
    OutputDir.Kept kept = out.prepare(plan, model);
    out.checkSpace(plan, kept, model.bytes());
    console.printf("plan: %d tensors (%d to %s with %s) in %s, %d shards, %d output files%s%n",
        plan.tensors().size(), plan.tensors().stream().filter(Plan.Tensor::reported).count(), command, plan.describe(),
        Format.bytes(plan.totalInputBytes()), plan.shards().size(), plan.files().size(),
        kept.sizes().isEmpty() ? "" : " (" + kept.sizes().size() + " already committed by an earlier run: kept)");
    String unchanged = copiedMatrices(plan);
    if (!unchanged.isEmpty()) {
      console.println("plan: copied unchanged, not 1-D: " + unchanged);
    }
    console.println("plan: " + model.describe());

    int[] build = plan.files().stream().mapToInt(f -> f.index()).filter(f -> !kept.sizes().containsKey(f)).toArray();
    List<FileResult> results = new ArrayList<>();
    String master = conf.get("spark.master");
    long planned = System.nanoTime();
    long sparkStarted = -1;
    long stagesDone = -1;
    long warmUp = -1;
    if (build.length > 0) {
      int[][] groups = groupsFor(plan, build);
      String outputDir = out.path().toString();
      String token = writeInTasks(conf, out, hadoop) ? java.util.UUID.randomUUID().toString() : null;
      try (JavaSparkContext sc = JobSparkContext.start(conf)) {
        sparkStarted = System.nanoTime();
        Progress progress = new Progress(plan, groups, build, command, console, 2000);
        sc.sc().addSparkListener(progress);
        TaskGpu.releaseAtEnd(sc.sc()); // NF4's shards kept on a GPU between the stages
        Map<Integer, GlobalStats> globals = plan.config() != null && plan.config().recipe().firstPass().isPresent()
            ? firstPass(sc, plan, groups, o.backend()) : Map.of();
        if (token != null) { // made here, once: a task never creates one (see ShardWriter)
          for (int f : build) {
            java.nio.file.Path temp = ShardWriter.tempFile(outputDir, plan.files().get(f).name(), token);
            try {
              java.nio.file.Files.createFile(temp);
            } catch (IOException e) {
              if (Storage.isNoSpace(e)) {
                throw new UserError(o.output() + ": no space left on the device to create " + temp.getFileName() + " ("
                    + Storage.firstLine(e) + "); free some space or give another output directory");
              }
              throw e;
            }
          }
        }
        ShardQuantizer quantizer = new ShardQuantizer(plan, globals, o.dumpShards(), o.backend(), outputDir, token);
        FileAssembler assembler = new FileAssembler(plan, outputDir, token);
        int[] files = build;
        results.addAll(sc.parallelize(Arrays.asList(groups), groups.length)
            .flatMapToPair(g -> quantizer.quantize(g).iterator())
            .setName(Progress.QUANTIZE_RDD)
            .partitionBy(new FilePartitioner(files))
            .mapPartitionsWithIndex((i, it) -> Collections.singletonList(assembler.assemble(files[i], it)).iterator(), true)
            .setName(Progress.ASSEMBLE_RDD)
            .collect());
        stagesDone = System.nanoTime();
        warmUp = progress.firstWaveExcessMillis(sc.defaultParallelism()) * 1_000_000L;
        String retried = progress.failures();
        if (retried != null) {
          console.println("retried: " + retried + "; every retried task's output replaced the failed attempt's");
        }
      } catch (Exception e) { // Spark throws its checked SparkException without declaring it
        throw UserError.fromJob(e);
      } finally {
        if (token != null) { // a committed file was renamed away; what is left is a failed job's
          for (int f : build) {
            java.nio.file.Path temp = ShardWriter.tempFile(outputDir, plan.files().get(f).name(), token);
            try {
              java.nio.file.Files.deleteIfExists(temp);
            } catch (IOException e) { // hidden, and the next run removes it: the job's own error is the one to say
              LOG.log(System.Logger.Level.WARNING, "shardquant: could not remove " + temp + ": " + Storage.firstLine(e));
            }
          }
        }
      }
    }
    if (Boolean.parseBoolean(conf.get(HALT_BEFORE_COMMIT_CONF, "false"))) {
      console.println("halting before commit (" + HALT_BEFORE_COMMIT_CONF + ")");
      console.flush();
      Runtime.getRuntime().halt(137);
    }
    Map<String, TensorReport> byName = new HashMap<>();
    kept.reports().forEach(r -> byName.put(r.tensor(), r));
    results.forEach(r -> r.tensors().forEach(t -> byName.put(t.tensor(), t)));
    List<TensorReport> reports = new ArrayList<>();
    for (Plan.Tensor t : plan.tensors()) {
      if (t.reported()) {
        reports.add(byName.get(t.input().name()));
      }
    }
    boolean verified = reports.stream().allMatch(r -> r.nonFinite() == 0);
    long wall = System.nanoTime() - start;
    ObjectNode extras = JsonNodeFactory.instance.objectNode();
    extras.put("wall_seconds", wall / 1e9);
    extras.put("input_bytes", plan.totalInputBytes());
    extras.put("output_bytes", plan.totalOutputBytes());
    extras.put("files_written", build.length);
    extras.put("files_kept", kept.sizes().size());
    extras.put("spark_master", master);
    extras.put("verified", verified);
    TestPause.onDriver("commit", conf);
    try {
      OutputDir.Copied copied = out.copyModelFiles(model, configText, hadoop);
      out.commit(plan, reports, extras, copied, verified);
    } catch (IOException e) {
      if (Storage.isNoSpace(e)) {
        throw new UserError(o.output() + ": no space left on the device while writing the model files and index ("
            + Storage.firstLine(e) + "); free some space and rerun: the weight files written so far are kept");
      }
      throw e;
    }
    for (TensorReport r : reports) {
      if (r.nonFinite() > 0) {
        console.printf("verification failed: tensor '%s': %d of %d dequantized values are not finite (SQNR %.2f dB); no"
            + " _SUCCESS is written%n", r.tensor(), r.nonFinite(), r.elements(), r.sqnrDb());
      }
    }
    Phases phases = new Phases(planned - start, sparkStarted < 0 ? -1 : sparkStarted - planned,
        stagesDone < 0 ? -1 : stagesDone - sparkStarted, System.nanoTime() - (stagesDone < 0 ? planned : stagesDone), warmUp);
    return new Result(plan, reports, kept.sizes().size(), build.length, wall, verified, master, phases);
  }

  /**
   * Whether the quantize tasks write the shards into the output files themselves: where every task runs
   * in a JVM on this machine (local mode) and the output is on its local file system, unless
   * {@link #WRITE_IN_TASKS_CONF} is false. Elsewhere the shards travel to their file's assembler.
   */
  static boolean writeInTasks(SparkConf conf, OutputDir out, Configuration hadoop) {
    return conf.get("spark.master").startsWith("local") && conf.getBoolean(WRITE_IN_TASKS_CONF, true)
        && Storage.isLocal(Storage.fs(out.path(), hadoop));
  }

  static SparkConf sparkConf(JobOptions o) {
    return sparkConf(o, "quantize");
  }

  /** The Spark settings of a job ({@code command} names the application): the master, Kryo, the user's {@code --conf}. */
  public static SparkConf sparkConf(JobOptions o, String command) {
    SparkConf conf = new SparkConf();
    if (o.master() != null) {
      conf.setMaster(o.master());
    } else if (!conf.contains("spark.master")) {
      conf.setMaster(LOCAL_MASTER);
    }
    conf.setIfMissing("spark.app.name", "shardquant " + command);
    conf.set("spark.serializer", "org.apache.spark.serializer.KryoSerializer");
    conf.set("spark.kryo.registrator", ShardquantKryoRegistrator.class.getName());
    conf.set("spark.kryo.registrationRequired", "true");
    if (conf.get("spark.master").startsWith("local")) {
      conf.setIfMissing("spark.ui.enabled", "false");
    }
    o.sparkConf().forEach(conf::set);
    MasterCheck.check(conf); // an unreachable standalone master: one line, in seconds, before any work
    return conf;
  }

  /**
   * Refuses an unknown backend. In local mode this JVM runs the tasks, so the backend is started here,
   * before Spark takes over logging: {@code cuda} without a GPU is refused with the reason, and the line
   * saying which backend runs and why reaches the console. On a cluster the executors decide: the driver
   * needs no GPU, and opening one here would only cost time (an executor without CUDA fails its task
   * with the reason).
   */
  private static void checkBackend(String backend, String master, List<Recipe> recipes) {
    try {
      Backends.checkName(backend);
      if (master.startsWith("local")) {
        // only the job's recipes are self-checked now (the others on first use): ~0.3 s each
        Backends.forName(backend, 0, Backends.TASKS_PER_GPU, recipes);
      }
    } catch (IllegalArgumentException e) {
      throw new UserError("--backend: " + e.getMessage());
    }
  }

  /**
   * The tensors of more than one dimension the plan copies unchanged (embeddings, lm_head, excluded
   * weights, MoE routers, 3-D fused experts), so none is left out silently; names that differ only in
   * their numbers (one per layer) are shown once with {@code *} and a count.
   */
  static String copiedMatrices(Plan plan) {
    Map<String, List<Plan.Tensor>> byPattern = new java.util.LinkedHashMap<>();
    for (Plan.Tensor t : plan.tensors()) {
      if (!t.reported() && t.input().rank() > 1) {
        byPattern.computeIfAbsent(t.input().name().replaceAll("\\.\\d+\\.", ".*."), k -> new ArrayList<>()).add(t);
      }
    }
    List<String> out = new ArrayList<>();
    byPattern.forEach((pattern, ts) -> out.add(ts.size() == 1
        ? ts.get(0).input().name() + " " + Arrays.toString(ts.get(0).input().shape())
        : pattern + " (" + ts.size() + ", e.g. " + Arrays.toString(ts.get(0).input().shape()) + ")"));
    return String.join(", ", out);
  }

  /** The plan's task groups, keeping only shards of files still to build. */
  static int[][] groupsFor(Plan plan, int[] build) {
    List<int[]> out = new ArrayList<>();
    for (int[] g : plan.groups()) {
      int[] left = Arrays.stream(g).filter(s -> Arrays.binarySearch(build, plan.tensorOf(plan.shards().get(s)).file()) >= 0)
          .toArray();
      if (left.length > 0) {
        out.add(left);
      }
    }
    return out.toArray(new int[0][]);
  }

  /**
   * A tensor's statistics from its shards' first-pass partials, in row order (the recipe's
   * {@link shardquant.kernels.quant.FirstPass#combine}); a tensor the recipe cannot hold is the user's error.
   */
  public static GlobalStats combine(shardquant.plan.InputTensor t, QuantConfig c, List<float[]> partialsInRowOrder) {
    try {
      return c.recipe().firstPass().orElseThrow().combine(t.dtype(), partialsInRowOrder);
    } catch (IllegalArgumentException e) {
      throw new UserError(Storage.display(t.file()) + ": tensor '" + t.name() + "': " + e.getMessage());
    }
  }

  /** The recipe's first pass: each tensor's statistics, from all its shards' partials in row order. */
  private static Map<Integer, GlobalStats> firstPass(JavaSparkContext sc, Plan plan, int[][] groups, String backend) {
    ShardQuantizer partials = new ShardQuantizer(plan, Map.of(), null, backend);
    List<Tuple2<Integer, float[]>> byShardList = sc.parallelize(Arrays.asList(groups), groups.length)
        .flatMap(g -> partials.firstPass(g).iterator())
        .setName(Progress.FIRST_PASS_RDD)
        .collect();
    Map<Integer, float[]> byShard = new HashMap<>();
    byShardList.forEach(b -> byShard.put(b._1(), b._2()));
    Map<Integer, GlobalStats> stats = new HashMap<>();
    for (Plan.Tensor t : plan.tensors()) {
      if (!t.quantized() || !byShard.containsKey(t.firstShard())) {
        continue;
      }
      List<float[]> shards = new ArrayList<>();
      for (int s = t.firstShard(); s < t.firstShard() + t.shardCount(); s++) {
        shards.add(byShard.get(s));
      }
      stats.put(t.index(), combine(t.input(), plan.config(), shards));
    }
    return stats;
  }
}
