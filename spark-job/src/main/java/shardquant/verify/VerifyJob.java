package shardquant.verify;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaFutureAction;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.deploy.SparkHadoopUtil;
import scala.Tuple2;
import shardquant.commit.OutputDir;
import shardquant.job.JobOptions;
import shardquant.job.JobSparkContext;
import shardquant.job.Progress;
import shardquant.job.QuantizeJob;
import shardquant.io.Storage;
import shardquant.common.TensorReport;
import shardquant.common.UserError;
import shardquant.kernels.select.Backends;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.TorchaoMetadata;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.safetensors.SafetensorsHeader;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.verify.QuantStats;
import shardquant.plan.InputCheckpoint;
import shardquant.plan.JobSpec;
import shardquant.plan.ModelFiles;
import shardquant.plan.OutputFile;
import shardquant.plan.Plan;
import shardquant.plan.Planner;
import shardquant.plan.QuantizationConfig;

/**
 * {@code shardquant verify}: checks an output against its input, as a Spark job. The driver reads the
 * index and the output files' headers, plans the input as the job did, and checks what headers show
 * (every tensor present, its metadata string, its stored parts' dtypes and shapes); Spark tasks then
 * check every stored tensor's CRC-32C (a task per output file) and re-quantize every shard of the
 * input against the bytes stored for it, with the stats of the stored values (a task per group of
 * shards, O(shard) memory); the driver combines them into each tensor's first difference and its
 * report, recomputed from the stored tensors, against the one recorded; then the model files. Copied
 * tensors must equal the input.
 *
 * <p>Which kernels re-quantize ({@code --backend}): {@code reference}, the scalar reference;
 * {@code cpu}, the CPU SIMD kernels (self-checked against the reference when they start; the
 * reference where they cannot run); {@code auto}, per tensor, kernels other than those the report
 * says wrote it: the SIMD kernels for a tensor CUDA or the reference wrote, the reference for one the
 * SIMD kernels wrote or whose writer the report does not name.
 */
public final class VerifyJob {
  /** The choices of {@code --backend}. */
  public static final List<String> BACKENDS = List.of("auto", "cpu", "reference");
  /** The backend a tensor's report names when the report names none (a kept file's, an older output). */
  static final String UNKNOWN = "an unnamed backend";
  private static final ObjectMapper JSON = new ObjectMapper();

  private VerifyJob() {}

  /** What the user asked: the input and output, Spark's master and settings, the backend and shard size. */
  public record Options(String input, String output, String master, String backend, long shardBytes,
      Map<String, String> sparkConf) {}

  /**
   * The differences, each one line in the order they are listed; {@code config} null for a plain int4
   * output (checksums only, {@code stored} stored tensors); {@code backends}: "written by X, re-quantized
   * with Y" and how many tensors.
   */
  public record Result(List<String> problems, int tensors, int quantized, QuantConfig config, int stored,
      Map<String, Integer> backends) {}

  public static Result run(Options o, PrintStream console) throws IOException {
    if (!BACKENDS.contains(o.backend())) {
      throw new UserError("verify: --backend: unknown backend '" + o.backend() + "'; choose auto, cpu or reference");
    }
    String master = o.master() != null ? o.master() : System.getProperty("spark.master", QuantizeJob.LOCAL_MASTER);
    if (master.startsWith("local") && !o.backend().equals("reference")) {
      Backends.cpu(); // its self-check and its one line, before Spark takes over logging
    }
    SparkConf conf = VerifyKryoRegistrator.addTo(QuantizeJob.sparkConf(new JobOptions(o.input(), o.output(), null,
        o.master(), o.backend(), null, o.sparkConf()), "verify"));
    Configuration hadoop = SparkHadoopUtil.get().newConfiguration(conf);
    Path dir = Storage.path(o.output());
    FileSystem fs = Storage.fs(dir, hadoop);
    Path indexPath = new Path(dir, InputCheckpoint.INDEX);
    if (!fs.exists(indexPath)) {
      throw new UserError(o.output() + ": has no " + InputCheckpoint.INDEX + " (not a committed shardquant output)");
    }
    InputCheckpoint.weightMap(fs, indexPath); // its file names are read from the directory: names, never paths
    JsonNode index = JSON.readTree(Storage.readString(fs, indexPath));
    JsonNode meta = index.path("metadata");
    Set<String> fileNames = new TreeSet<>();
    index.path("weight_map").fields().forEachRemaining(e -> fileNames.add(e.getValue().asText()));
    if (!meta.has("recipe") && Int4Layout.PLAIN.cliName().equals(meta.path("layout").asText())) {
      return checksumsOnly(fs, dir, fileNames);
    }
    QuantConfig config;
    try {
      config = new QuantConfig(Recipe.fromCliName(meta.path("recipe").asText()), meta.path("group_size").asInt(),
          meta.path("bits").asInt());
    } catch (IllegalArgumentException e) {
      throw new UserError(indexPath + ": metadata does not name a shardquant recipe: " + e.getMessage());
    }
    Map<String, SafetensorsHeader> headers = new HashMap<>();
    Map<String, String> fileOfTensor = new HashMap<>();
    Set<String> quantized = new HashSet<>();
    for (String file : fileNames) {
      SafetensorsHeader h = Storage.readHeader(fs, new Path(dir, file));
      headers.put(file, h);
      for (String name : JSON.readValue(h.metadata().getOrDefault("tensor_names", "[]"), String[].class)) {
        // Every file lists the whole model: a tensor is in the file that stores its parts.
        String m = h.metadata().get(name);
        if (TorchaoMetadata.storedKeys(name, m == null ? null : JSON.readTree(m)).stream().noneMatch(h.entries()::containsKey)) {
          continue;
        }
        fileOfTensor.put(name, file);
        if (!TorchaoMetadata.plain().equals(m)) {
          quantized.add(name);
        }
      }
    }
    InputCheckpoint input = InputCheckpoint.read(o.input(), hadoop);
    String include = quantized.stream().map(Pattern::quote).collect(Collectors.joining("|"));
    Plan plan = Planner.plan(input, new JobSpec(config, include, null, o.shardBytes(), Long.MAX_VALUE));

    // What the headers show, on the driver; the tensors that pass are compared byte for byte by tasks.
    Map<Integer, String> headerProblems = new HashMap<>();
    Map<Integer, ShardChecker.Stored> stored = new HashMap<>();
    for (Plan.Tensor t : plan.tensors()) {
      String name = t.input().name();
      String file = fileOfTensor.get(name);
      if (file == null) {
        headerProblems.put(t.index(), name + ": in the input but not in the output");
        continue;
      }
      SafetensorsHeader h = headers.get(file);
      String wantMeta = t.quantized() ? TorchaoMetadata.quantized(config, t.input().shape(), t.input().dtype())
          : TorchaoMetadata.plain();
      if (!wantMeta.equals(h.metadata().get(name))) {
        headerProblems.put(t.index(), file + ": tensor '" + name + "': metadata " + h.metadata().get(name) + ", expected "
            + wantMeta);
        continue;
      }
      String problem = partsProblem(t, h);
      if (problem != null) {
        headerProblems.put(t.index(), file + ": " + problem);
        continue;
      }
      long[] starts = t.parts().stream().mapToLong(p -> h.dataStart() + h.entries().get(p.key()).begin()).toArray();
      stored.put(t.index(), new ShardChecker.Stored(new Path(dir, file).toString(), starts));
    }
    Map<String, String> writers = writers(fs, dir);
    Map<Integer, String> backends = new HashMap<>();
    for (Plan.Tensor t : plan.tensors()) {
      if (t.quantized() && stored.containsKey(t.index())) {
        backends.put(t.index(), backendFor(o.backend(), writers.getOrDefault(t.input().name(), UNKNOWN)));
      }
    }

    int[][] groups = plan.groups().stream()
        .map(g -> Arrays.stream(g).filter(s -> stored.containsKey(plan.shards().get(s).tensor())).toArray())
        .filter(g -> g.length > 0).toArray(int[][]::new);
    List<String> files = fileNames.stream().map(f -> new Path(dir, f).toString()).toList();
    List<ShardChecker.FileCheck> fileChecks;
    Map<Integer, ShardChecker.ShardCheck> byShard = new HashMap<>();
    Map<String, String> used = new HashMap<>();
    try (JavaSparkContext sc = JobSparkContext.start(conf)) {
      Progress progress = new Progress(plan, groups, new int[files.size()], "verify", console, 2000);
      sc.sc().addSparkListener(progress);
      // Checksums first: a few long tasks (one per file) that the shards' tasks run beside.
      JavaFutureAction<List<ShardChecker.FileCheck>> checksums = sc.parallelize(files, Math.max(1, files.size()))
          .map(ShardChecker::checksums)
          .setName(Progress.CHECKSUM_RDD)
          .collectAsync();
      Map<Integer, GlobalStats> globals = config.recipe().firstPass().isPresent()
          ? firstPass(sc, plan, new ShardChecker(plan, stored, backends, Map.of()), groups) : Map.of();
      ShardChecker checker = new ShardChecker(plan, stored, backends, globals);
      List<ShardChecker.ShardCheck> checks = groups.length == 0 ? List.of()
          : sc.parallelize(Arrays.asList(groups), groups.length)
              .flatMap(g -> checker.check(g).iterator())
              .setName(Progress.VERIFY_RDD)
              .collect();
      checks.forEach(c -> byShard.put(c.shard(), c));
      fileChecks = checksums.get();
      String retried = progress.failures();
      if (retried != null) {
        console.println("retried: " + retried);
      }
    } catch (Exception e) { // Spark throws its checked SparkException without declaring it
      throw UserError.fromJob(e);
    }

    List<String> problems = new ArrayList<>();
    fileChecks.forEach(f -> problems.addAll(f.problems()));
    for (Plan.Tensor t : plan.tensors()) {
      if (headerProblems.containsKey(t.index())) {
        problems.add(headerProblems.get(t.index()));
        continue;
      }
      String file = fileOfTensor.get(t.input().name());
      String problem = null;
      QuantStats fromFiles = new QuantStats();
      for (int s = t.firstShard(); s < t.firstShard() + t.shardCount() && problem == null; s++) {
        ShardChecker.ShardCheck c = byShard.get(s);
        problem = c.problem();
        if (problem == null && c.stats() != null) {
          fromFiles.merge(c.stats());
        }
      }
      if (problem == null && t.quantized()) {
        problem = compareReport(t.input().name(), fromFiles, headers.get(file));
      }
      if (problem != null) {
        problems.add(file + ": " + problem);
      }
    }
    Set<String> planned = plan.tensors().stream().map(t -> t.input().name()).collect(Collectors.toSet());
    new TreeMap<>(fileOfTensor).forEach((name, file) -> {
      if (!planned.contains(name)) {
        problems.add(file + ": tensor '" + name + "' is not in the input");
      }
    });
    problems.addAll(checkModelFiles(input, hadoop, fs, dir, index, plan));
    OutputDir.unlisted(fs, dir, index).forEach(n -> problems.add(n + ": in the output directory but not in its index"));
    // Which kernels re-quantized what, as the executors ran them (cpu: SIMD where it could run).
    Map<String, Integer> backendLines = new TreeMap<>();
    for (Plan.Tensor t : plan.tensors()) {
      ShardChecker.ShardCheck first = byShard.get(t.firstShard());
      if (t.quantized() && first != null) {
        backendLines.merge("written by " + writers.getOrDefault(t.input().name(), UNKNOWN) + ", re-quantized with "
            + first.backend(), 1, Integer::sum);
      }
    }
    return new Result(problems, plan.tensors().size(), quantized.size(), config, 0, backendLines);
  }

  /** The backend that re-quantizes a tensor {@code writer} wrote, for {@code --backend choice} (see the class comment). */
  static String backendFor(String choice, String writer) {
    if (!choice.equals("auto")) {
      return choice;
    }
    return writer.equals("cuda") || writer.equals(Backends.reference().name()) ? "cpu" : "reference";
  }

  /** Which backend wrote each quantized tensor, from the job's report (absent or unreadable: none named). */
  private static Map<String, String> writers(FileSystem fs, Path dir) throws IOException {
    Path report = new Path(dir, OutputDir.REPORT);
    Map<String, String> out = new HashMap<>();
    if (!fs.exists(report)) {
      return out;
    }
    JsonNode tensors;
    try {
      tensors = JSON.readTree(Storage.readString(fs, report)).path("tensors");
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      return out;
    }
    tensors.fields().forEachRemaining(e -> {
      String b = e.getValue().path("backend").asText("");
      if (!b.isEmpty() && !b.equals(TensorReport.FROM_FILE)) {
        out.put(e.getKey(), b);
      }
    });
    return out;
  }

  /** The recipe's first pass, as a Spark stage: each tensor's global statistics from its shards' partials. */
  private static Map<Integer, GlobalStats> firstPass(JavaSparkContext sc, Plan plan, ShardChecker checker, int[][] groups) {
    List<Tuple2<Integer, float[]>> blocks = sc.parallelize(Arrays.asList(groups), Math.max(1, groups.length))
        .flatMap(g -> checker.firstPass(g).iterator())
        .setName(Progress.FIRST_PASS_RDD)
        .collect();
    Map<Integer, float[]> byShard = new HashMap<>();
    blocks.forEach(b -> byShard.put(b._1(), b._2()));
    Map<Integer, GlobalStats> means = new HashMap<>();
    for (Plan.Tensor t : plan.tensors()) {
      if (t.quantized() && byShard.containsKey(t.firstShard())) {
        List<float[]> shards = new ArrayList<>();
        for (int s = t.firstShard(); s < t.firstShard() + t.shardCount(); s++) {
          shards.add(byShard.get(s));
        }
        means.put(t.index(), QuantizeJob.combine(t.input(), plan.config(), shards));
      }
    }
    return means;
  }

  /** Each stored part of {@code t} in its file's header, with the dtype and shape the plan gives; else what differs. */
  private static String partsProblem(Plan.Tensor t, SafetensorsHeader h) {
    for (Plan.StoredPart p : t.parts()) {
      TensorEntry e = h.entries().get(p.key());
      if (e == null || e.dtype() != p.dtype() || !Arrays.equals(e.shape(), p.shape())) {
        return "stored tensor " + p + " is " + (e == null ? "missing" : e.dtype().safetensorsName() + Arrays.toString(e.shape()));
      }
    }
    return null;
  }

  /**
   * A repack into the plain int4 form: no recipe writes it, so there is nothing to re-quantize and compare
   * with; its stored bytes are checked against their checksums, and its values by round trip.
   */
  private static Result checksumsOnly(FileSystem fs, Path dir, Set<String> fileNames) throws IOException {
    List<String> problems = new ArrayList<>();
    int stored = 0;
    for (String file : fileNames) {
      SafetensorsHeader h = Storage.readHeader(fs, new Path(dir, file));
      stored += h.entries().size();
      problems.addAll(ShardChecker.checksums(fs, new Path(dir, file), h));
    }
    return new Result(problems, 0, 0, null, stored, Map.of());
  }

  /** The report recorded at write time must be what the files give (all but the clipped fraction, which needs the codes' history). */
  private static String compareReport(String tensor, QuantStats fromFiles, SafetensorsHeader h) throws IOException {
    TensorReport recorded = OutputFile.statsIn(h.metadata()).stream().filter(r -> r.tensor().equals(tensor)).findFirst()
        .orElse(null);
    if (recorded == null) {
      return "tensor '" + tensor + "': its file records no report";
    }
    TensorReport now = TensorReport.of(tensor, fromFiles, recorded.backend(), -1);
    if (Double.compare(now.sqnrDb(), recorded.sqnrDb()) != 0 || Float.compare(now.maxAbsError(), recorded.maxAbsError()) != 0
        || now.elements() != recorded.elements() || now.nonFinite() != recorded.nonFinite()) {
      return "tensor '" + tensor + "': recorded SQNR " + recorded.sqnrDb() + " dB, max abs error " + recorded.maxAbsError()
          + " but the stored tensor gives " + now.sqnrDb() + " dB, " + now.maxAbsError();
    }
    return null;
  }

  /**
   * The model's other files: each one the input has must be in the output as the job wrote it (the
   * input's bytes; config.json the input's with the quantization_config this recipe and selection give),
   * with the SHA-256 the index recorded; none may be in the index's record without being in the input.
   */
  private static List<String> checkModelFiles(InputCheckpoint input, Configuration conf, FileSystem fs, Path dir,
      JsonNode index, Plan plan) throws IOException {
    List<String> problems = new ArrayList<>();
    ModelFiles model = ModelFiles.read(input, conf);
    JsonNode recorded = index.path("metadata").path(OutputDir.MODEL_FILES);
    Path root = new Path(model.root());
    FileSystem in = Storage.fs(root, conf);
    for (String rel : model.copied()) {
      String want = rel.equals(ModelFiles.CONFIG)
          ? Storage.sha256(model.outputConfig(QuantizationConfig.of(plan)).getBytes(StandardCharsets.UTF_8))
          : Storage.sha256(in, new Path(root, rel));
      Path p = new Path(dir, rel);
      if (!fs.exists(p)) {
        problems.add(rel + ": in the input model directory but not copied into the output");
        continue;
      }
      if (!want.equals(Storage.sha256(fs, p))) {
        problems.add(rel + ": differs from " + (rel.equals(ModelFiles.CONFIG)
            ? "the input's config.json with the quantization_config of " + plan.describe()
              + " (" + QuantizationConfig.loaders(plan.config()) + ")"
            : "the input's copy"));
      } else if (!want.equals(recorded.path(rel).asText())) {
        problems.add(InputCheckpoint.INDEX + ": records " + (recorded.has(rel) ? "another SHA-256" : "no SHA-256") + " for " + rel);
      }
    }
    recorded.fieldNames().forEachRemaining(rel -> {
      if (!model.copied().contains(rel)) {
        problems.add(InputCheckpoint.INDEX + ": records model file " + rel + ", which the input does not have");
      }
    });
    return problems;
  }
}
