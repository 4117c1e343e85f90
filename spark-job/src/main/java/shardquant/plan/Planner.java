package shardquant.plan;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.job.Storage;
import shardquant.job.UserError;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.RecipeKernel;
import shardquant.kernels.quant.TorchaoMetadata;
import shardquant.kernels.safetensors.SafetensorsWriter;

/**
 * Builds the {@link Plan} from the input's headers (DESIGN.md, "Sharding and the data path", step 1):
 * picks the tensors to quantize, refuses the ones the recipe cannot take, cuts each tensor into row
 * shards of about {@code --shard-bytes} on the recipe's row alignment, groups small shards into one
 * Spark task, and fills output files of at most {@code --output-file-bytes} with whole tensors.
 */
public final class Planner {
  public static final String VERSION = "0.1.0";

  private Planner() {}

  public static Plan plan(InputCheckpoint input, JobSpec spec) {
    QuantConfig c = spec.config();
    RecipeKernel k = c.recipe().kernel();
    String jobId = jobId(input, spec);

    List<Plan.Tensor> tensors = new ArrayList<>();
    List<Plan.Shard> shards = new ArrayList<>();
    int file = 0;
    long fileBytes = 0;
    boolean anyQuantized = false;
    for (InputTensor t : input.tensors()) {
      boolean quantize = spec.selects(t);
      List<Plan.StoredPart> parts = new ArrayList<>();
      long align = 1;
      if (quantize) {
        String why = t.rank() != 2 ? "it is " + t.rank() + "-D and the recipes quantize 2-D weights"
            : !t.dtype().isFloating() ? "its dtype " + t.dtype().safetensorsName() + " is not a float type"
            : k.refusal(t.rows(), t.cols(), t.dtype(), c);
        if (why != null) {
          throw new UserError(Storage.display(t.file()) + ": tensor '" + t.name() + "' " + t.dtype().safetensorsName()
              + Arrays.toString(t.shape()) + ": recipe " + c + " cannot take it: " + why
              + " (leave it out with --exclude, or choose another recipe or group size)");
        }
        for (PartSpec p : k.parts(t.rows(), t.cols(), t.dtype(), c)) {
          parts.add(new Plan.StoredPart(storedKey(t.name(), p.name()), p.name(), p.dtype(), p.shape(), p.rowDim(), 0));
        }
        align = k.rowAlignment(t.cols(), c);
        anyQuantized = true;
      } else {
        parts.add(new Plan.StoredPart(t.name(), null, t.dtype(), t.shape(), t.rank() == 0 ? -1 : 0, 0));
      }
      long bytes = parts.stream().mapToLong(Plan.StoredPart::byteSize).sum();
      if (fileBytes > 0 && fileBytes + bytes > spec.outputFileBytes()) {
        file++;
        fileBytes = 0;
      }
      fileBytes += bytes;

      int first = shards.size();
      long rows = t.rows();
      long perShard = rowsPerShard(t.rowBytes(), spec.shardBytes(), align);
      long r = 0;
      do {
        long end = Math.min(rows, r + perShard);
        shards.add(new Plan.Shard(shards.size(), tensors.size(), r, end));
        r = end;
      } while (r < rows);
      tensors.add(new Plan.Tensor(tensors.size(), t, quantize, file, parts, first, shards.size() - first));
    }
    if (!anyQuantized) {
      throw new UserError(input.root() + ": no tensor is selected for quantization"
          + (spec.include() != null ? " by --include '" + spec.include() + "'" : " (the default takes 2-D *.weight tensors"
              + " other than embeddings, norms and lm_head; use --include REGEX)"));
    }
    List<OutputFile> files = layOutFiles(tensors, file + 1, c, jobId);
    return new Plan(c, input.fingerprint(), jobId, List.copyOf(withOffsets(tensors)), List.copyOf(shards),
        groups(shards, tensors, spec.shardBytes()), files);
  }

  /** Rows in each shard of a tensor (the last may have fewer): as many as fit in {@code shardBytes}, a multiple of {@code align}, at least {@code align}. */
  public static long rowsPerShard(long rowBytes, long shardBytes, long align) {
    long perShard = Math.max(1, shardBytes / Math.max(1, rowBytes));
    return Math.max(align, perShard / align * align);
  }

  /** torchao's key for a data part of a tensor: {@code a.b.weight} stores {@code a.b._weight_qdata}. */
  public static String storedKey(String tensor, String dataName) {
    int dot = tensor.lastIndexOf('.');
    return tensor.substring(0, dot + 1) + "_" + tensor.substring(dot + 1) + "_" + dataName;
  }

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
      out.add(new Plan.Tensor(t.index(), t.input(), t.quantized(), t.file(), List.copyOf(parts), t.firstShard(),
          t.shardCount()));
    }
    return out;
  }

  private static List<OutputFile> layOutFiles(List<Plan.Tensor> tensors, int count, QuantConfig c, String jobId) {
    List<OutputFile> files = new ArrayList<>();
    for (int f = 0; f < count; f++) {
      String name = String.format("model-%05d-of-%05d.safetensors", f + 1, count);
      List<Integer> members = new ArrayList<>();
      List<SafetensorsWriter.Declared> declared = new ArrayList<>();
      List<String> quantized = new ArrayList<>();
      Map<String, String> metadata = new LinkedHashMap<>();
      ArrayNode names = JsonNodeFactory.instance.arrayNode();
      for (Plan.Tensor t : tensors) {
        if (t.file() != f) {
          continue;
        }
        members.add(t.index());
        InputTensor in = t.input();
        for (Plan.StoredPart p : t.parts()) {
          declared.add(new SafetensorsWriter.Declared(p.key(), p.dtype(), p.shape()));
        }
        metadata.put(in.name(), t.quantized() ? TorchaoMetadata.quantized(c, in.shape(), in.dtype()) : TorchaoMetadata.plain());
        names.add(in.name());
        if (t.quantized()) {
          quantized.add(in.name());
        }
      }
      metadata.put("tensor_names", TorchaoMetadata.pythonJson(names));
      metadata.put("format", "pt");
      MessageDigest d = InputCheckpoint.sha256();
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
      long b = (s.rowEnd() - s.rowStart()) * tensors.get(s.tensor()).input().rowBytes();
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
    MessageDigest d = InputCheckpoint.sha256();
    InputCheckpoint.update(d, "shardquant " + VERSION + "\0" + input.fingerprint() + "\0" + spec.config() + "\0"
        + spec.include() + "\0" + spec.exclude());
    return HexFormat.of().formatHex(d.digest());
  }
}
