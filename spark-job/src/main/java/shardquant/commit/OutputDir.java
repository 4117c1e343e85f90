package shardquant.commit;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import shardquant.job.Storage;
import shardquant.job.TensorReport;
import shardquant.job.UserError;
import shardquant.kernels.repack.Int4Layout;
import shardquant.kernels.safetensors.SafetensorsFormatException;
import shardquant.plan.OutputFile;
import shardquant.plan.Plan;
import shardquant.plan.Planner;

/**
 * The output directory (DESIGN.md, "Output checkpoint" and step 4). Before a job: refuse a path that
 * is a file or a directory holding anything but this job's files, and find the files an earlier run
 * of the same job already committed (same input fingerprint, recipe and file layout), which are kept.
 * After: the index, the report, and {@code _SUCCESS} last, each written under a hidden name and
 * renamed into place. Hidden temporary files of killed runs are removed.
 */
public final class OutputDir {
  public static final String SUCCESS = "_SUCCESS";
  public static final String INDEX = "model.safetensors.index.json";
  public static final String REPORT = "quantization_report.json";
  private static final Pattern MODEL_FILE = Pattern.compile("model-\\d{5}-of-\\d{5}\\.safetensors");
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private final FileSystem fs;
  private final Path dir;
  private final String userPath;

  private OutputDir(FileSystem fs, Path dir, String userPath) {
    this.fs = fs;
    this.dir = dir;
    this.userPath = userPath;
  }

  public static OutputDir of(String output, Configuration conf) {
    Path dir = Storage.path(output);
    return new OutputDir(Storage.fs(dir, conf), dir, output);
  }

  /** Files of an earlier run of this very job, by file index, with the reports their headers carry. */
  public record Kept(Map<Integer, Long> sizes, List<TensorReport> reports) {}

  /**
   * Checks the directory can take this job's output and readies it: creates it, removes what a rerun
   * must redo ({@code _SUCCESS} first, so no half-redone directory ever claims success), and returns
   * the files to keep.
   */
  public Kept prepare(Plan plan) throws IOException {
    FileStatus status;
    try {
      status = fs.getFileStatus(dir);
    } catch (FileNotFoundException e) {
      if (!fs.mkdirs(dir)) {
        throw new UserError(userPath + ": cannot create the output directory");
      }
      return new Kept(Map.of(), List.of());
    }
    if (!status.isDirectory()) {
      throw new UserError(userPath + ": the output path is a file; give a directory (new or from an earlier run of this job)");
    }
    Map<String, Integer> planned = new HashMap<>();
    plan.files().forEach(f -> planned.put(f.name(), f.index()));
    Map<Integer, Long> keep = new TreeMap<>();
    List<TensorReport> reports = new ArrayList<>();
    List<Path> redo = new ArrayList<>();
    List<Path> hidden = new ArrayList<>();
    for (FileStatus s : fs.listStatus(dir)) {
      String name = s.getPath().getName();
      if (name.startsWith(".") && name.contains(".tmp-")) {
        hidden.add(s.getPath());
        continue;
      }
      if (name.equals(SUCCESS)) {
        continue;
      }
      if (name.equals(INDEX) || name.equals(REPORT)) {
        checkOurs(s.getPath(), name.equals(INDEX) ? "/metadata/shardquant_version" : "/input_fingerprint");
        continue;
      }
      if (!s.isFile() || !MODEL_FILE.matcher(name).matches()) {
        throw new UserError(userPath + ": holds '" + name + "', which shardquant did not write; give an empty or new"
            + " output directory");
      }
      Map<String, String> meta;
      try {
        meta = Storage.readHeader(fs, s.getPath()).metadata();
      } catch (SafetensorsFormatException e) {
        throw new UserError(userPath + ": holds '" + name + "', which is not a readable safetensors file (" + e.getMessage()
            + "); remove it or give another output directory");
      }
      String[] by = OutputFile.writtenBy(meta);
      if (by == null || !plan.jobId().equals(by[0])) {
        throw new UserError(userPath + ": holds '" + name + "' from " + (by == null ? "another tool" : "another shardquant job")
            + " (different input, input files changed since, or a different recipe or selection); give an empty or new"
            + " output directory, or remove its files");
      }
      Integer index = planned.get(name);
      if (index != null && plan.files().get(index).planHash().equals(by[1]) && s.getLen() == plan.files().get(index).size()) {
        keep.put(index, s.getLen());
        reports.addAll(OutputFile.statsIn(meta));
      } else {
        redo.add(s.getPath());
      }
    }
    fs.delete(new Path(dir, SUCCESS), false);
    fs.delete(new Path(dir, INDEX), false);
    fs.delete(new Path(dir, REPORT), false);
    for (Path p : redo) {
      fs.delete(p, false);
    }
    for (Path p : hidden) {
      fs.delete(p, false);
    }
    return new Kept(keep, reports);
  }

  /** An index or report a rerun would replace must be one shardquant wrote. */
  private void checkOurs(Path p, String pointer) throws IOException {
    boolean ours;
    try {
      ours = !JSON.readTree(Storage.readString(fs, p)).at(pointer).isMissingNode();
    } catch (IOException e) {
      ours = false;
    }
    if (!ours) {
      throw new UserError(userPath + ": holds '" + p.getName() + "', which shardquant did not write; give an empty or new"
          + " output directory");
    }
  }

  /** Writes the index and the report, then {@code _SUCCESS} if {@code success}. */
  public void commit(Plan plan, List<TensorReport> reports, ObjectNode reportExtras, boolean success) throws IOException {
    ObjectNode index = JSON.createObjectNode();
    ObjectNode meta = index.putObject("metadata");
    meta.put("total_size", plan.files().stream().mapToLong(f -> f.size() - f.dataStart()).sum());
    if (plan.config() != null) {
      meta.put("recipe", plan.config().recipe().cliName());
      meta.put("group_size", plan.config().groupSize());
      meta.put("bits", plan.config().bits());
      meta.put("torchao_type", plan.config().recipe().torchaoType());
    } else {
      // The plain int4 form is no recipe's: the index names its layout and type instead (inspect, verify).
      meta.put("group_size", plan.tensors().stream().filter(t -> t.repack() != null).findFirst().orElseThrow()
          .repack().groupSize());
      meta.put("bits", 4);
      meta.put("torchao_type", Int4Layout.PLAIN_TYPE);
    }
    if (plan.layout() != null) {
      meta.put("layout", plan.layout().cliName());
    }
    meta.put("shardquant_version", Planner.VERSION);
    meta.put("input_fingerprint", plan.fingerprint());
    ObjectNode weightMap = index.putObject("weight_map");
    for (Plan.Tensor t : plan.tensors()) {
      for (Plan.StoredPart p : t.parts()) {
        weightMap.put(p.key(), plan.files().get(t.file()).name());
      }
    }
    ObjectNode report = JSON.createObjectNode();
    report.put("recipe", plan.describe());
    report.put("input_fingerprint", plan.fingerprint());
    report.setAll(reportExtras);
    ObjectNode tensors = report.putObject("tensors");
    for (TensorReport r : reports) {
      ObjectNode o = tensors.putObject(r.tensor());
      o.put("sqnr_db", r.sqnrDb());
      o.put("max_abs_error", r.maxAbsError());
      o.put("clipped_fraction", r.clippedFraction());
      o.put("elements", r.elements());
      o.put("non_finite", r.nonFinite());
      o.put("backend", r.backend());
      if (r.quantizeNanos() >= 0) {
        o.put("quantize_ms", r.quantizeNanos() / 1e6);
      } else {
        o.put("kept_from_earlier_run", true);
      }
    }
    ArrayNode files = report.putArray("files");
    plan.files().forEach(f -> files.add(f.name()));
    if (success) {
      Storage.writeAtomically(fs, new Path(dir, INDEX), JSON.writeValueAsString(index) + "\n");
    }
    Storage.writeAtomically(fs, new Path(dir, REPORT), JSON.writeValueAsString(report) + "\n");
    if (success) {
      Storage.writeAtomically(fs, new Path(dir, SUCCESS), "");
    }
  }


  public Path path() {
    return dir;
  }
}
