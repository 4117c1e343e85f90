package shardquant.plan;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectWriter;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.HashSet;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import shardquant.io.Storage;
import shardquant.common.UserError;

/**
 * Everything of the input model directory that is not a weight and comes along into the output:
 * {@code config.json} (which gets the output's {@code quantization_config}), tokenizer files, generation
 * config, chat templates, preprocessor configs, custom code, README and LICENSE, at their relative paths.
 * Left behind: the safetensors files and their index (the job writes its own), weights in other formats
 * ({@code *.bin}, {@code *.pt}, {@code *.pth}, {@code *.gguf}, ...), the {@code original/} folder of
 * consolidated weights, hidden entries (a {@code .cache/} of a hub download, {@code .gitattributes}), and
 * shardquant's own report and marker when the input is a shardquant output (repack).
 *
 * <p>{@code bytes}: the copied files' total size. Read on the driver before any heavy work: a config.json that is not a JSON object, and any file that
 * cannot be read, is the user's error here (exit 2), not after an hour of quantizing.
 */
public record ModelFiles(String root, List<String> copied, List<String> leftBehind, String configText, boolean directory,
    long bytes) {
  public static final String CONFIG = "config.json";
  private static final Set<String> WEIGHT_SUFFIXES =
      Set.of(".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack", ".npz", ".onnx", ".tflite");
  /** Files shardquant writes into an output itself; an input that is a shardquant output has them too. */
  private static final Set<String> OWN = Set.of("quantization_report.json", "_SUCCESS");
  private static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);

  /** The model files beside {@code input}'s weights (none where the input is one file). */
  public static ModelFiles read(InputCheckpoint input, Configuration conf) throws IOException {
    Path root = new Path(input.root());
    FileSystem fs = Storage.fs(root, conf);
    if (!fs.getFileStatus(root).isDirectory()) {
      return new ModelFiles(root.toString(), List.of(), List.of(), null, false, 0);
    }
    Set<String> weightFiles = new HashSet<>();
    input.tensors().forEach(t -> weightFiles.add(new Path(t.file()).getName()));
    List<String> copied = new ArrayList<>();
    List<String> left = new ArrayList<>();
    long[] bytes = {0};
    walk(fs, root, "", weightFiles, copied, left, bytes);
    copied.sort(null);
    left.sort(null);
    String config = null;
    for (String rel : copied) {
      Path p = new Path(root, rel);
      try (FSDataInputStream in = fs.open(p)) {
        if (rel.equals(CONFIG)) {
          config = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
      } catch (IOException e) {
        throw new UserError(Storage.display(p.toString()) + ": cannot be read (" + e.getMessage() + "); every non-weight file"
            + " of the model directory is copied into the output: make it readable or move it out of the input");
      }
    }
    if (config != null) {
      parseConfig(new Path(root, CONFIG), config);
    }
    return new ModelFiles(root.toString(), List.copyOf(copied), List.copyOf(left), config, true, bytes[0]);
  }

  private static void walk(FileSystem fs, Path dir, String prefix, Set<String> weightFiles, List<String> copied,
      List<String> left, long[] bytes) throws IOException {
    FileStatus[] listing = fs.listStatus(dir);
    if (Storage.isLocal(fs)) {
      // Hadoop's local listing drops entries it cannot stat, such as a broken symbolic link (a hub cache
      // snapshot whose blob is gone): that is a file the output would silently lack.
      Set<String> listed = new HashSet<>();
      for (FileStatus s : listing) {
        listed.add(s.getPath().getName());
      }
      try (Stream<java.nio.file.Path> names = Files.list(java.nio.file.Path.of(dir.toUri()))) {
        for (java.nio.file.Path n : (Iterable<java.nio.file.Path>) names::iterator) {
          if (!listed.contains(n.getFileName().toString()) && !n.getFileName().toString().startsWith(".")) {
            throw new UserError(n + ": cannot be read (a broken symbolic link?); every non-weight file of the model directory"
                + " is copied into the output: fix it or move it out of the input");
          }
        }
      }
    }
    for (FileStatus s : listing) {
      String name = s.getPath().getName();
      String rel = prefix + name;
      String lower = name.toLowerCase(Locale.ROOT);
      if (name.startsWith(".")) {
        left.add(rel + (s.isDirectory() ? "/" : "") + " (hidden)");
      } else if (s.isDirectory()) {
        if (prefix.isEmpty() && lower.equals("original")) {
          left.add(rel + "/ (consolidated weights)");
        } else {
          walk(fs, s.getPath(), rel + "/", weightFiles, copied, left, bytes);
        }
      } else if (prefix.isEmpty() && (name.equals(InputCheckpoint.INDEX) || OWN.contains(name))) {
        continue; // the job writes its own
      } else if (prefix.isEmpty() && weightFiles.contains(name)) {
        continue; // the input's weights: quantized or copied into the job's own files
      } else if (lower.endsWith(".safetensors")) {
        left.add(rel + " (safetensors weights not in the input's index)");
      } else if (WEIGHT_SUFFIXES.stream().anyMatch(lower::endsWith) || lower.matches(".*\\.(bin|pt|pth)\\.index\\.json")) {
        left.add(rel + " (weights in another format)");
      } else {
        copied.add(rel);
        bytes[0] += s.getLen();
      }
    }
  }

  /** The input's config.json as a JSON object, or the user's error naming it. */
  private static ObjectNode parseConfig(Path p, String text) {
    JsonNode n;
    try {
      n = JSON.readTree(text);
    } catch (JsonProcessingException e) {
      throw new UserError(Storage.display(p.toString()) + ": is not valid JSON (" + e.getOriginalMessage() + " at line "
          + e.getLocation().getLineNr() + "); fix the model's config.json");
    }
    if (n == null || !n.isObject()) {
      throw new UserError(Storage.display(p.toString()) + ": is not a JSON object; fix the model's config.json");
    }
    return (ObjectNode) n;
  }

  /** Refuses an input already quantized: its config.json names a quantization_config. */
  public void refuseQuantized() {
    if (configText == null) {
      return;
    }
    Path p = new Path(new Path(root), CONFIG);
    JsonNode qc = parseConfig(p, configText).get("quantization_config");
    if (qc != null && !qc.isNull()) {
      throw new UserError(Storage.display(p.toString()) + ": already has a quantization_config (quant_method '"
          + qc.path("quant_method").asText("?") + "'): the model is quantized; give the original high-precision model");
    }
  }

  /**
   * The output's config.json: the input's with {@code quantization_config} set to {@code qc} (removed where
   * null). Where the input has none, every byte of it is kept and the entry is added before its closing
   * brace; an input that has one (a repack of a shardquant output) is rewritten with the entry replaced.
   */
  public String outputConfig(ObjectNode qc) {
    ObjectNode config = parseConfig(new Path(new Path(root), CONFIG), configText);
    if (!config.has("quantization_config")) {
      return qc == null ? configText : withEntry(configText, qc);
    }
    String original = withoutOwnEntry(configText, config.get("quantization_config"));
    if (original != null) {
      return qc == null ? original : withEntry(original, qc);
    }
    config.remove("quantization_config");
    if (qc != null) {
      config.set("quantization_config", qc);
    }
    return indented(config) + "\n";
  }

  /** {@code text} (a JSON object without the entry) with {@code "quantization_config": qc} added before its closing brace. */
  private static String withEntry(String text, JsonNode qc) {
    int close = text.lastIndexOf('}');
    String body = text.substring(0, close).stripTrailing();
    String entry = "\"quantization_config\": " + indented(qc).replace("\n", "\n  ");
    return body + (body.endsWith("{") ? "\n  " : ",\n  ") + entry + "\n}" + text.substring(close + 1);
  }

  /**
   * The config.json a shardquant output's was made from, where {@code text} is exactly {@link #withEntry}
   * of it (so a repack from one layout to another and back gives the same bytes); null otherwise.
   */
  private static String withoutOwnEntry(String text, JsonNode qc) {
    int at = text.lastIndexOf("\n  \"quantization_config\": ");
    if (at < 0) {
      return null;
    }
    String body = text.substring(0, at);
    body = body.endsWith(",") ? body.substring(0, body.length() - 1) : body;
    int close = text.lastIndexOf('}');
    String candidate = body + "\n}" + text.substring(close + 1);
    try {
      JsonNode n = JSON.readTree(candidate);
      return n != null && n.isObject() && !n.has("quantization_config") && withEntry(candidate, qc).equals(text) ? candidate
          : null;
    } catch (JsonProcessingException e) {
      return null;
    }
  }

  /** JSON as Python's {@code json.dumps(indent=2)} lays it out (what transformers writes). */
  static String indented(JsonNode n) {
    DefaultIndenter indenter = new DefaultIndenter("  ", "\n");
    DefaultPrettyPrinter pp = new DefaultPrettyPrinter()
        .withSeparators(Separators.createDefaultInstance().withObjectFieldValueSpacing(Separators.Spacing.AFTER))
        .withArrayIndenter(indenter).withObjectIndenter(indenter);
    ObjectWriter w = JSON.writer(pp);
    try {
      return w.writeValueAsString(n);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The top-level names of the copied files (a file, or the folder holding one), as they appear in the output. */
  public Set<String> topLevelNames() {
    TreeSet<String> out = new TreeSet<>();
    copied.forEach(c -> out.add(c.contains("/") ? c.substring(0, c.indexOf('/')) : c));
    return out;
  }

  /** The plan line's account of the model files: what comes along and what stays behind. */
  public String describe() {
    if (!directory) {
      return "model files: none (the input is one .safetensors file, not a model directory: no config.json or tokenizer"
          + " to copy; the weights are written as usual)";
    }
    StringBuilder sb = new StringBuilder("model files: ");
    if (copied.isEmpty()) {
      sb.append("none to copy");
    } else {
      sb.append(copied.size()).append(" copied (").append(String.join(", ", copied)).append(")");
      if (configText != null) {
        sb.append(", config.json with the output's quantization_config");
      }
    }
    if (configText == null) {
      sb.append("; no config.json in the input, so transformers and vLLM cannot load the output as a model");
    }
    if (!leftBehind.isEmpty()) {
      sb.append("; left behind: ").append(String.join(", ", leftBehind));
    }
    return sb.toString();
  }
}
