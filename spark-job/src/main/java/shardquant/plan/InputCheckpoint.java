package shardquant.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import shardquant.common.UserError;
import shardquant.io.Storage;
import shardquant.kernels.safetensors.SafetensorsFormatException;
import shardquant.kernels.safetensors.SafetensorsHeader;
import shardquant.kernels.safetensors.TensorEntry;

/**
 * The input checkpoint, from its headers only: one {@code .safetensors} file, a directory of them, or
 * a directory with {@code model.safetensors.index.json} (whose weight map must agree with the files).
 * The fingerprint identifies the input for reruns: file names, sizes, modification times and headers.
 */
public record InputCheckpoint(String root, List<InputTensor> tensors, String fingerprint) {
  public static final String INDEX = "model.safetensors.index.json";
  private static final ObjectMapper JSON = new ObjectMapper();

  public static InputCheckpoint read(String input, Configuration conf) throws IOException {
    Path root = Storage.path(input);
    FileSystem fs = Storage.fs(root, conf);
    FileStatus status;
    try {
      status = fs.getFileStatus(root);
    } catch (FileNotFoundException e) {
      throw new UserError(input + ": no such file or directory");
    }
    List<FileStatus> files = new ArrayList<>();
    Map<String, String> weightMap = null;
    if (status.isFile()) {
      files.add(status);
    } else {
      Path index = new Path(root, INDEX);
      if (fs.exists(index)) {
        weightMap = weightMap(fs, index);
        for (String f : new TreeSet<>(weightMap.values())) {
          Path p = new Path(root, f);
          if (!fs.exists(p)) {
            throw new UserError(Storage.display(index.toString()) + ": names file '" + f + "', which does not exist");
          }
          files.add(fs.getFileStatus(p));
        }
      } else {
        for (FileStatus s : fs.listStatus(root)) {
          if (s.isFile() && s.getPath().getName().endsWith(".safetensors") && !s.getPath().getName().startsWith(".")) {
            files.add(s);
          }
        }
        files.sort((a, b) -> a.getPath().getName().compareTo(b.getPath().getName()));
        refuseTwoCopies(input, files);
      }
      if (files.isEmpty()) {
        throw new UserError(input + ": directory holds no .safetensors files");
      }
    }
    MessageDigest digest = Storage.sha256();
    List<InputTensor> tensors = new ArrayList<>();
    Map<String, String> seen = new HashMap<>();
    for (FileStatus f : files) {
      SafetensorsHeader h;
      try {
        h = Storage.readHeader(fs, f.getPath());
      } catch (SafetensorsFormatException e) {
        throw new UserError(e.getMessage(), e);
      }
      update(digest, f.getPath().getName() + "\0" + f.getLen() + "\0" + f.getModificationTime() + "\0");
      for (TensorEntry e : h.entries().values()) {
        String file = f.getPath().toString();
        if (e.name().isEmpty()) {
          throw new UserError(Storage.display(file) + ": holds a tensor with an empty name, which no model can have"
              + " (a corrupt or hand-made file; rename it)");
        }
        String other = seen.put(e.name(), file);
        if (other != null) {
          throw new UserError(Storage.display(file) + ": tensor '" + e.name() + "' is also in " + Storage.display(other));
        }
        if (weightMap != null && !f.getPath().getName().equals(weightMap.get(e.name()))) {
          throw new UserError(Storage.display(file) + ": tensor '" + e.name() + "' is not mapped to this file by " + INDEX
              + " (it says " + weightMap.get(e.name()) + ")");
        }
        tensors.add(new InputTensor(e.name(), file, e.dtype(), e.shape(), h.dataStart() + e.begin(), e.byteSize()));
        update(digest, e.name() + "\0" + e.dtype() + Arrays.toString(e.shape()) + e.begin() + "\0");
      }
    }
    if (weightMap != null) {
      for (Map.Entry<String, String> m : weightMap.entrySet()) {
        if (!seen.containsKey(m.getKey())) {
          throw new UserError(Storage.display(new Path(root, m.getValue()).toString()) + ": tensor '" + m.getKey() + "' is in " + INDEX
              + " but not in that file");
        }
      }
    }
    if (tensors.isEmpty()) {
      throw new UserError(input + ": holds no tensors");
    }
    return new InputCheckpoint(root.toString(), List.copyOf(tensors), HexFormat.of().formatHex(digest.digest()));
  }

  /**
   * Mistral's repositories hold {@code consolidated*.safetensors} beside the Hugging Face files: the same
   * weights under other names (or the same ones), which read together would be quantized twice. Only an
   * index says which copy is meant; without one, such a mix is refused rather than guessed.
   */
  private static void refuseTwoCopies(String input, List<FileStatus> files) {
    List<String> consolidated = new ArrayList<>();
    List<String> others = new ArrayList<>();
    for (FileStatus f : files) {
      String name = f.getPath().getName();
      (name.startsWith("consolidated") ? consolidated : others).add(name);
    }
    if (!consolidated.isEmpty() && !others.isEmpty()) {
      throw new UserError(input + ": holds " + String.join(", ", consolidated) + " beside " + String.join(", ", others)
          + " and no " + INDEX + ": consolidated*.safetensors is Mistral's second copy of the same weights, which would be"
          + " quantized twice; remove " + String.join(", ", consolidated) + ", or give a " + INDEX
          + " naming the files to quantize");
    }
  }

  /** An index's weight_map (tensor or stored key -> file name), every value a plain file name of its directory, or the user's error. */
  public static Map<String, String> weightMap(FileSystem fs, Path index) throws IOException {
    JsonNode root;
    try {
      root = JSON.readTree(Storage.readString(fs, index));
    } catch (IOException e) {
      throw new UserError(Storage.display(index.toString()) + ": not valid JSON: " + e.getMessage().lines().findFirst().orElse(""));
    }
    JsonNode map = root == null ? null : root.get("weight_map");
    if (map == null || !map.isObject()) {
      throw new UserError(Storage.display(index.toString()) + ": has no \"weight_map\" object");
    }
    Map<String, String> out = new LinkedHashMap<>();
    map.fields().forEachRemaining(e -> {
      if (!e.getValue().isTextual() || !isPlainFileName(e.getValue().textValue())) {
        throw new UserError(Storage.display(index.toString()) + ": weight_map maps tensor '" + e.getKey() + "' to "
            + e.getValue() + ", which is not the name of a file in this directory (expected a plain name such as"
            + " model-00001-of-00002.safetensors: no path, no URI)");
      }
      out.put(e.getKey(), e.getValue().textValue());
    });
    return out;
  }

  /**
   * A weight_map value is read from the input, so it is a name, never a path: no separator, no URI
   * scheme (Hadoop's Path would take {@code file:x} for one), not {@code .} or {@code ..}, no control
   * characters; resolved against the index's directory it names a file in that directory.
   */
  private static boolean isPlainFileName(String f) {
    return !f.isEmpty() && !f.equals(".") && !f.equals("..") && f.chars().noneMatch(c -> c == '/' || c == '\\' || c == ':'
        || c < 0x20 || c == 0x7f);
  }

  static void update(MessageDigest d, String s) {
    d.update(s.getBytes(StandardCharsets.UTF_8));
  }
}
