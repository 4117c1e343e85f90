package shardquant.plan;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import shardquant.common.TensorReport;
import shardquant.common.UserError;
import shardquant.io.Storage;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.loader.Checkpoint;
import shardquant.kernels.loader.TensorInfo;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.RecipeKernel;
import shardquant.kernels.quant.TorchaoMetadata;
import shardquant.kernels.repack.TinygemmInt4Tensor;
import shardquant.kernels.safetensors.SafetensorsFormatException;
import shardquant.kernels.safetensors.SafetensorsWriter;

/**
 * Builds the {@link Plan} from the input's headers (DESIGN.md, "Sharding and the data path", step 1):
 * picks the tensors to quantize, refuses the ones the recipe cannot take, cuts each tensor into row
 * shards of about {@code --shard-bytes} on the recipe's row alignment, groups small shards into one
 * Spark task, and fills output files of at most {@code --output-file-bytes} with whole tensors. A repack
 * ({@link #planRepack}) is planned the same way, with int4 tensors cut on both layouts' row alignment.
 */
public final class Planner {
  public static final String VERSION = "0.1.0";

  private Planner() {}

  public static Plan plan(InputCheckpoint input, JobSpec spec) {
    QuantConfig c = spec.config();
    RecipeKernel k = c.recipe().kernel();
    Layout out = new Layout(spec.shardBytes(), spec.outputFileBytes());
    for (InputTensor t : input.tensors()) {
      boolean empty = Arrays.stream(t.shape()).anyMatch(d -> d == 0);
      if (!spec.selects(t) || empty && spec.include() == null) { // an empty tensor has no rows to quantize
        out.copy(t);
        continue;
      }
      if (empty) {
        throw new UserError(Storage.display(t.file()) + ": tensor '" + t.name() + "' " + t.dtype().safetensorsName()
            + Arrays.toString(t.shape()) + " has no elements, so there is nothing to quantize (leave it out of --include,"
            + " or --exclude it: it is then copied unchanged)");
      }
      String why = t.rank() != 2 ? "it is " + t.rank() + "-D and the recipes quantize 2-D weights"
          : !t.dtype().quantizable() ? "its dtype " + t.dtype().safetensorsName() + " is not one a recipe takes ("
              + shardquant.kernels.dtype.DType.quantizableNames() + ")"
          : k.refusal(t.rows(), t.cols(), t.dtype(), c);
      if (why != null) {
        throw new UserError(Storage.display(t.file()) + ": tensor '" + t.name() + "' " + t.dtype().safetensorsName()
            + Arrays.toString(t.shape()) + ": recipe " + c + " cannot take it: " + why
            + " (leave it out with --exclude, or choose another recipe or group size)");
      }
      out.add(t, Plan.Action.QUANTIZE, TorchaoMetadata.quantized(c, t.shape(), t.dtype()), null,
          k.parts(t.rows(), t.cols(), t.dtype(), c), k.rowAlignment(t.cols(), c), t.rowBytes());
    }
    if (out.tensors.stream().noneMatch(Plan.Tensor::quantized)) {
      throw new UserError(input.root() + ": no tensor is selected for quantization"
          + (spec.include() != null ? " by --include '" + spec.include() + "'" : " (the default takes 2-D *.weight tensors"
              + " other than embeddings, norms and lm_head; use --include REGEX)"));
    }
    return out.plan(c, null, input.fingerprint(), jobId(input, spec));
  }

  /**
   * The plan of {@code shardquant repack}: every tinygemm int4 tensor of {@code input} (a committed
   * checkpoint written by quantize with int4-tile-packed or int4-cpu, or by an earlier repack) converted
   * into {@code target}, every plain tensor copied. The loader reads the tensors' recipes and layouts
   * from the metadata, {@code input} where their stored parts lie; the loader reads local paths only.
   */
  public static Plan planRepack(InputCheckpoint input, Int4Layout target, long shardBytes, long outputFileBytes) {
    Path root = Storage.path(input.root());
    if (root.toUri().getScheme() != null && !root.toUri().getScheme().equals("file")) {
      throw new UserError(input.root() + ": repack reads local checkpoints only for now; copy it to a local directory first");
    }
    Map<String, InputTensor> stored = new HashMap<>();
    input.tensors().forEach(t -> stored.put(t.name(), t));
    Map<String, Map<String, String>> fileMetadata = new HashMap<>();
    Layout out = new Layout(shardBytes, outputFileBytes);
    Integer groupSize = null;
    try (Checkpoint cp = Checkpoint.open(java.nio.file.Path.of(root.toUri()))) {
      for (TensorInfo t : cp.tensors()) {
        if (!t.quantized()) {
          out.copy(stored.get(t.name()));
          continue;
        }
        String where = Storage.display(t.file().toString()) + ": tensor '" + t.name() + "' ";
        if (t.layout() == null) {
          throw new UserError(where + "is quantized with " + t.config() + ", whose codes are not tinygemm int4; repack converts"
              + " int4-tile-packed, int4-cpu and plain int4 checkpoints only (quantize the original with one of those recipes)");
        }
        int g = t.int4GroupSize();
        if (groupSize != null && g != groupSize) {
          throw new UserError(where + "has group size " + g + " but others have " + groupSize
              + "; repack writes one recipe and group size per checkpoint");
        }
        groupSize = g;
        long rows = t.shape()[0];
        long cols = t.shape()[1];
        String why = t.layout() == target ? null : target.refusal(rows, cols, g);
        if (why != null) {
          throw new UserError(where + Arrays.toString(t.shape()) + " cannot be stored in the " + target.cliName() + " layout: "
              + why);
        }
        List<PartSpec> specs = t.layout().parts(rows, cols, g);
        List<Plan.StoredPart> sources = new ArrayList<>();
        long sourceBytes = 0;
        for (int i = 0; i < specs.size(); i++) {
          PartSpec p = specs.get(i);
          InputTensor s = stored.get(t.parts().get(i).key());
          sources.add(new Plan.StoredPart(s.name(), p.name(), p.dtype(), p.shape(), p.rowDim(), s.offset()));
          sourceBytes += s.byteSize();
        }
        String file = stored.get(t.parts().get(0).key()).file();
        TensorReport stats = recordedStats(fileMetadata, file, t.name());
        InputTensor in = new InputTensor(t.name(), file, t.dtype(), t.shape(), sources.get(0).offset(), sourceBytes);
        out.add(in, Plan.Action.REPACK, target.torchaoMetadata(t.shape(), g),
            new Plan.Repack(t.layout(), target, g, file, List.copyOf(sources), stats), target.parts(rows, cols, g),
            TinygemmInt4Tensor.rowAlignment(t.layout(), target), Math.max(1, sourceBytes / rows));
      }
    } catch (SafetensorsFormatException e) {
      throw new UserError(e.getMessage(), e);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    if (groupSize == null) {
      throw new UserError(input.root() + ": holds no int4 tensor to repack (repack converts the output of quantize with"
          + " int4-tile-packed or int4-cpu, or of an earlier repack)");
    }
    QuantConfig c = target.recipe() == null ? null : new QuantConfig(target.recipe(), groupSize, 4);
    MessageDigest d = Storage.sha256();
    InputCheckpoint.update(d, "shardquant " + VERSION + "\0repack\0" + input.fingerprint() + "\0" + target.cliName());
    return out.plan(c, target, input.fingerprint(), HexFormat.of().formatHex(d.digest()));
  }

  /** The stats the source file recorded for {@code tensor}, with backend "repack"; null if it recorded none. */
  private static TensorReport recordedStats(Map<String, Map<String, String>> cache, String file, String tensor)
      throws IOException {
    Map<String, String> meta = cache.get(file);
    if (meta == null) {
      Path p = new Path(file);
      meta = Storage.readHeader(Storage.fs(p, new Configuration()), p).metadata();
      cache.put(file, meta);
    }
    if (OutputFile.writtenBy(meta) == null) {
      return null;
    }
    for (TensorReport r : OutputFile.statsIn(meta)) {
      if (r.tensor().equals(tensor)) {
        return new TensorReport(tensor, r.sqnrDb(), r.maxAbsError(), r.clippedFraction(), r.elements(), r.nonFinite(),
            "repack", -1);
      }
    }
    return null;
  }

  /**
   * The tensors and shards of a plan as they are added, in order: each tensor cut into row shards of
   * about {@code shardBytes} on its row alignment, and output files filled to at most
   * {@code outputFileBytes} with whole tensors.
   */
  private static final class Layout {
    final long shardBytes;
    final long outputFileBytes;
    final List<Plan.Tensor> tensors = new ArrayList<>();
    final List<Plan.Shard> shards = new ArrayList<>();
    /** Every key stored so far, and the tensor stored under it. */
    final Map<String, InputTensor> keys = new HashMap<>();
    int file;
    long fileBytes;

    Layout(long shardBytes, long outputFileBytes) {
      this.shardBytes = shardBytes;
      this.outputFileBytes = outputFileBytes;
    }

    void copy(InputTensor t) {
      List<PartSpec> whole = List.of(new PartSpec(t.name(), t.dtype(), t.shape(), t.rank() == 0 ? PartSpec.REPLICATED : 0));
      add(t, Plan.Action.COPY, TorchaoMetadata.plain(), null, whole, 1, t.rowBytes());
    }

    /** {@code parts} of the whole tensor; a copied tensor's one part is stored under its own name. */
    void add(InputTensor t, Plan.Action action, String metadata, Plan.Repack repack, List<PartSpec> parts, long align,
        long rowBytes) {
      if (METADATA_KEYS.contains(t.name())) {
        throw new UserError(Storage.display(t.file()) + ": tensor '" + t.name() + "' has the name of an entry every output"
            + " file's metadata holds (" + String.join(", ", METADATA_KEYS) + "); rename it in the checkpoint");
      }
      List<Plan.StoredPart> stored = new ArrayList<>();
      for (PartSpec p : parts) {
        String key = action == Plan.Action.COPY ? t.name() : TorchaoMetadata.storedKey(t.name(), p.name());
        refuseCollision(key, keys.putIfAbsent(key, t), t);
        stored.add(new Plan.StoredPart(key, action == Plan.Action.COPY ? null : p.name(), p.dtype(), p.shape(), p.rowDim(), 0));
      }
      long bytes = stored.stream().mapToLong(Plan.StoredPart::byteSize).sum();
      if (fileBytes > 0 && fileBytes + bytes > outputFileBytes) {
        file++;
        fileBytes = 0;
      }
      fileBytes += bytes;
      int first = shards.size();
      long rows = t.rows();
      long perShard = rowsPerShard(rowBytes, shardBytes, align);
      long r = 0;
      do {
        long end = Math.min(rows, r + perShard);
        shards.add(new Plan.Shard(shards.size(), tensors.size(), r, end));
        r = end;
      } while (r < rows);
      tensors.add(new Plan.Tensor(tensors.size(), t, action, metadata, repack, file, List.copyOf(stored), first,
          shards.size() - first));
    }

    /**
     * Two tensors stored under one key (the input already holds {@code x._weight_qdata} and {@code x.weight}
     * is quantized into it): one would overwrite the other in the output, and a loader would misread both.
     */
    private static void refuseCollision(String key, InputTensor earlier, InputTensor t) {
      if (earlier == null) {
        return;
      }
      throw new UserError(Storage.display(t.file()) + ": " + storedAs(t, key) + " and " + storedAs(earlier, key)
          + (earlier.file().equals(t.file()) ? "" : " in " + Storage.display(earlier.file()))
          + " would both be stored as '" + key + "' in the output; rename one in the checkpoint, or leave the quantized one"
          + " out with --exclude");
    }

    private static String storedAs(InputTensor t, String key) {
      return "tensor '" + t.name() + "'" + (t.name().equals(key) ? ""
          : " (quantized: stored as '" + TorchaoMetadata.storedKey(t.name(), "*") + "')");
    }

    Plan plan(QuantConfig c, Int4Layout layout, String fingerprint, String jobId) {
      List<Plan.Tensor> placed = withOffsets(tensors);
      List<OutputFile> files = layOutFiles(placed, file + 1, jobId);
      return new Plan(c, layout, fingerprint, jobId, List.copyOf(placed), List.copyOf(shards), groups(shards, placed, shardBytes),
          files);
    }
  }

  /** Rows in each shard of a tensor (the last may have fewer): as many as fit in {@code shardBytes}, a multiple of {@code align}, at least {@code align}. */
  public static long rowsPerShard(long rowBytes, long shardBytes, long align) {
    return shardquant.kernels.tensor.Tensor.rowsPerShard(rowBytes, shardBytes, align);
  }


  /** Entries of every output file's metadata besides the tensors' own (see {@link #layOutFiles}). */
  private static final String TENSOR_NAMES = "tensor_names";
  private static final String FORMAT = "format";
  private static final List<String> METADATA_KEYS = List.of(TENSOR_NAMES, FORMAT, OutputFile.SHARDQUANT_KEY);

  private static List<Plan.Tensor> withOffsets(List<Plan.Tensor> tensors) {
    Map<Integer, Long> next = new LinkedHashMap<>();
    List<Plan.Tensor> out = new ArrayList<>();
    for (Plan.Tensor t : tensors) {
      List<Plan.StoredPart> parts = new ArrayList<>();
      long at = next.getOrDefault(t.file(), 0L);
      for (Plan.StoredPart p : t.parts()) {
        parts.add(new Plan.StoredPart(p.key(), p.dataName(), p.dtype(), p.shape(), p.rowDim(), at));
        at += p.byteSize();
      }
      next.put(t.file(), at);
      out.add(t.withParts(parts));
    }
    return out;
  }

  /**
   * The output files, each with the whole model's metadata (every tensor's torchao JSON and the full
   * {@code tensor_names}), as transformers' {@code save_pretrained} writes every shard: transformers merges
   * the files' metadata and then expects every listed part consumed, and vLLM reads each file with its
   * own metadata; a tensor is in the file that stores its parts.
   */
  private static List<OutputFile> layOutFiles(List<Plan.Tensor> tensors, int count, String jobId) {
    Map<String, String> metadata = new LinkedHashMap<>();
    ArrayNode names = JsonNodeFactory.instance.arrayNode();
    for (Plan.Tensor t : tensors) {
      metadata.put(t.input().name(), t.metadata());
      names.add(t.input().name());
    }
    metadata.put(TENSOR_NAMES, TorchaoMetadata.pythonJson(names));
    metadata.put(FORMAT, "pt");
    List<OutputFile> files = new ArrayList<>();
    for (int f = 0; f < count; f++) {
      String name = String.format("model-%05d-of-%05d.safetensors", f + 1, count);
      List<Integer> members = new ArrayList<>();
      List<SafetensorsWriter.Declared> declared = new ArrayList<>();
      List<String> quantized = new ArrayList<>();
      for (Plan.Tensor t : tensors) {
        if (t.file() != f) {
          continue;
        }
        members.add(t.index());
        for (Plan.StoredPart p : t.parts()) {
          declared.add(new SafetensorsWriter.Declared(p.key(), p.dtype(), p.shape()));
        }
        if (t.reported()) {
          quantized.add(t.input().name());
        }
      }
      MessageDigest d = Storage.sha256();
      InputCheckpoint.update(d, jobId + "\0" + name + "\0");
      declared.forEach(x -> InputCheckpoint.update(d, x.name() + x.dtype() + Arrays.toString(x.shape()) + "\0"));
      metadata.forEach((key, v) -> InputCheckpoint.update(d, key + "\0" + v + "\0"));
      String planHash = HexFormat.of().formatHex(d.digest());
      int header = OutputFile.reserve(declared, metadata, jobId, planHash, quantized, name);
      files.add(new OutputFile(f, name, List.copyOf(members), List.copyOf(declared), metadata, jobId, planHash, header));
    }
    return List.copyOf(files);
  }

  /** Consecutive shards into Spark tasks of about {@code shardBytes} of input each. */
  private static List<int[]> groups(List<Plan.Shard> shards, List<Plan.Tensor> tensors, long shardBytes) {
    List<int[]> groups = new ArrayList<>();
    List<Integer> current = new ArrayList<>();
    long bytes = 0;
    for (Plan.Shard s : shards) {
      long b = tensors.get(s.tensor()).inputBytes(s.rowEnd() - s.rowStart());
      if (!current.isEmpty() && bytes + b > shardBytes) {
        groups.add(current.stream().mapToInt(Integer::intValue).toArray());
        current.clear();
        bytes = 0;
      }
      current.add(s.index());
      bytes += b;
    }
    if (!current.isEmpty()) {
      groups.add(current.stream().mapToInt(Integer::intValue).toArray());
    }
    return List.copyOf(groups);
  }

  static String jobId(InputCheckpoint input, JobSpec spec) {
    MessageDigest d = Storage.sha256();
    InputCheckpoint.update(d, "shardquant " + VERSION + "\0" + input.fingerprint() + "\0" + spec.config() + "\0"
        + spec.include() + "\0" + spec.exclude());
    return HexFormat.of().formatHex(d.digest());
  }
}
