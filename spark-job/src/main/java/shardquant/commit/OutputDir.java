package shardquant.commit;

import com.fasterxml.jackson.databind.JsonNode;
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
import java.util.Set;
import java.nio.charset.StandardCharsets;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import shardquant.io.Storage;
import shardquant.common.TensorReport;
import shardquant.common.UserError;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.safetensors.SafetensorsFormatException;
import shardquant.plan.ModelFiles;
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
  /** The index's and report's record of the model files copied alongside (relative path -> SHA-256 in the output). */
  public static final String MODEL_FILES = "model_files";
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

  /** Claims the directory for this job before anything is written there ({@link OutputClaim}); close it to release. */
  public OutputClaim claim(Plan plan, String command) throws IOException {
    return OutputClaim.take(fs, dir, userPath, plan.jobId(), plan.fingerprint(), command);
  }

  /**
   * Refuses a job whose output cannot fit: the files still to write and the model files against the free
   * space the file system reports (where it reports none, as some object stores, nothing is checked).
   */
  public void checkSpace(Plan plan, Kept kept, long modelFileBytes) throws IOException {
    long remaining;
    try {
      remaining = fs.getStatus(dir).getRemaining();
    } catch (IOException | UnsupportedOperationException e) {
      return;
    }
    long needed = modelFileBytes + plan.files().stream().filter(f -> !kept.sizes().containsKey(f.index()))
        .mapToLong(OutputFile::size).sum();
    if (remaining > 0 && remaining < needed) {
      throw new UserError(userPath + ": the output needs " + shardquant.common.Format.bytes(needed) + " but its file system has "
          + shardquant.common.Format.bytes(remaining) + " free; free some space or give another output directory");
    }
  }

  /** Files of an earlier run of this very job, by file index, with the reports their headers carry. */
  public record Kept(Map<Integer, Long> sizes, List<TensorReport> reports) {}

  /**
   * Checks the directory (claimed by this job) can take its output and readies it: removes what a rerun
   * must redo ({@code _SUCCESS} first, so no half-redone directory ever claims success), and returns
   * the files to keep. Copies of the model's other files from an earlier run are left for
   * {@link #copyModelFiles} to compare; ones whose input file is gone are removed.
   */
  public Kept prepare(Plan plan, ModelFiles model) throws IOException {
    FileStatus[] listing = fs.listStatus(dir);
    // What an earlier run copied, from its index or report (which must be shardquant's).
    Set<String> copiedEarlier = new TreeSet<>();
    boolean ours = false;
    for (FileStatus s : listing) {
      String name = s.getPath().getName();
      if (name.equals(INDEX) || name.equals(REPORT)) {
        JsonNode json = checkOurs(s.getPath(), name.equals(INDEX) ? "/metadata/shardquant_version" : "/input_fingerprint");
        (name.equals(INDEX) ? json.path("metadata") : json).path(MODEL_FILES).fieldNames().forEachRemaining(copiedEarlier::add);
        ours = true;
      }
    }
    Set<String> modelNames = model.topLevelNames();
    Map<String, Integer> planned = new HashMap<>();
    plan.files().forEach(f -> planned.put(f.name(), f.index()));
    Map<Integer, Long> keep = new TreeMap<>();
    List<TensorReport> reports = new ArrayList<>();
    List<Path> redo = new ArrayList<>();
    List<Path> hidden = new ArrayList<>();
    String modelFileFound = null;
    for (FileStatus s : listing) {
      String name = s.getPath().getName();
      if (name.startsWith(".") && name.contains(".tmp-")) {
        hidden.add(s.getPath());
        continue;
      }
      if (name.equals(SUCCESS) || name.equals(INDEX) || name.equals(REPORT) || name.equals(OutputClaim.NAME)) {
        continue;
      }
      if (modelNames.contains(name) || copiedEarlier.stream().anyMatch(c -> c.equals(name) || c.startsWith(name + "/"))) {
        modelFileFound = name; // an earlier run's copy: compared, then kept or replaced, by copyModelFiles
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
      ours = true;
      Integer index = planned.get(name);
      if (index != null && plan.files().get(index).planHash().equals(by[1]) && s.getLen() == plan.files().get(index).size()) {
        keep.put(index, s.getLen());
        reports.addAll(OutputFile.statsIn(meta));
      } else {
        redo.add(s.getPath());
      }
    }
    if (!ours && modelFileFound != null) {
      // Model files are copied last, after the weights: without any file of ours beside them they are someone else's.
      throw new UserError(userPath + ": holds '" + modelFileFound + "' but no checkpoint shardquant wrote (another model's"
          + " directory?); give an empty or new output directory");
    }
    fs.delete(new Path(dir, SUCCESS), false);
    fs.delete(new Path(dir, INDEX), false);
    fs.delete(new Path(dir, REPORT), false);
    for (String stale : copiedEarlier) {
      if (!model.copied().contains(stale) && isPlainRelative(stale)) {
        fs.delete(new Path(dir, stale), false); // copied by an earlier run from a file the input no longer has
      }
    }
    for (Path p : redo) {
      fs.delete(p, false);
    }
    for (Path p : hidden) {
      fs.delete(p, false);
    }
    return new Kept(keep, reports);
  }

  /**
   * What a committed directory holds that its index does not account for (another job's files, a claim
   * left by a running or crashed job, stray files), for {@code verify} and {@code inspect}.
   */
  public static List<String> unlisted(FileSystem fs, Path dir, JsonNode index) throws IOException {
    Set<String> known = new TreeSet<>(List.of(INDEX, REPORT, SUCCESS));
    index.path("weight_map").forEach(f -> known.add(f.asText()));
    index.path("metadata").path(MODEL_FILES).fieldNames()
        .forEachRemaining(rel -> known.add(rel.contains("/") ? rel.substring(0, rel.indexOf('/')) : rel));
    List<String> out = new ArrayList<>();
    for (FileStatus s : fs.listStatus(dir)) {
      String name = s.getPath().getName();
      if (!known.contains(name)) {
        out.add(name.equals(OutputClaim.NAME) ? name + " (a job is running here, or one was killed before its commit)"
            : name + (s.isDirectory() ? "/" : ""));
      }
    }
    return out;
  }

  /** A relative path inside the directory (read from a file there, so never trusted to stay inside by itself). */
  private static boolean isPlainRelative(String rel) {
    return !rel.isEmpty() && !rel.startsWith("/") && !rel.contains("\\")
        && java.util.Arrays.stream(rel.split("/", -1)).noneMatch(c -> c.isEmpty() || c.equals(".") || c.equals(".."));
  }

  /** An index or report a rerun would replace must be one shardquant wrote; returns it. */
  private JsonNode checkOurs(Path p, String pointer) throws IOException {
    JsonNode json;
    try {
      json = JSON.readTree(Storage.readString(fs, p));
    } catch (IOException e) {
      json = null;
    }
    if (json == null || json.at(pointer).isMissingNode()) {
      throw new UserError(userPath + ": holds '" + p.getName() + "', which shardquant did not write; give an empty or new"
          + " output directory");
    }
    return json;
  }

  /** The model's copied files: each one's SHA-256 as it stands in the output, and how many an earlier run's copy already matched. */
  public record Copied(Map<String, String> sha256, int kept) {}

  /**
   * Copies the model's non-weight files into the output through the file system layer, each under a
   * hidden name then renamed into place; config.json is written as {@code configText}. A file an earlier
   * run copied that is byte-identical is kept; one that differs is replaced.
   */
  public Copied copyModelFiles(ModelFiles model, String configText, Configuration conf) throws IOException {
    Path root = new Path(model.root());
    FileSystem in = Storage.fs(root, conf);
    Map<String, String> sums = new TreeMap<>();
    int kept = 0;
    for (String rel : model.copied()) {
      Path target = new Path(dir, rel);
      byte[] content = rel.equals(ModelFiles.CONFIG) ? configText.getBytes(StandardCharsets.UTF_8) : null;
      String want = content != null ? Storage.sha256(content) : Storage.sha256(in, new Path(root, rel));
      if (fs.exists(target) && fs.getFileStatus(target).isFile() && want.equals(Storage.sha256(fs, target))) {
        kept++;
      } else if (content != null) {
        Storage.writeAtomically(fs, target, configText);
      } else {
        Storage.copyAtomically(in, new Path(root, rel), fs, target);
      }
      sums.put(rel, want);
    }
    return new Copied(sums, kept);
  }

  /** Writes the index and the report, then {@code _SUCCESS} if {@code success}. */
  public void commit(Plan plan, List<TensorReport> reports, ObjectNode reportExtras, Copied copied, boolean success)
      throws IOException {
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
    copied.sha256().forEach(meta.putObject(MODEL_FILES)::put);
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
    copied.sha256().forEach(report.putObject(MODEL_FILES)::put);
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
