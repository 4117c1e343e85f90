package shardquant.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import shardquant.exec.Placement;
import shardquant.job.OpenFiles;
import shardquant.job.QuantizeJob;
import shardquant.job.Storage;
import shardquant.job.UserError;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.Nf4Ref;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.TorchaoMetadata;
import shardquant.kernels.safetensors.SafetensorsHeader;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;
import shardquant.plan.InputCheckpoint;
import shardquant.plan.InputTensor;
import shardquant.plan.JobSpec;
import shardquant.plan.Plan;
import shardquant.plan.Planner;

/**
 * {@code shardquant verify --input PATH --output DIR}: re-quantizes every quantized tensor of the
 * input with the reference kernels, shard by shard, and compares each stored byte and each
 * per-tensor metadata string of the output; copied tensors must equal the input. Runs on this
 * machine, without Spark, in O(shard) memory. Exit 0 identical, 3 a difference (listed).
 */
final class Verify {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final long SHARD_BYTES = 64L << 20;

  private Verify() {}

  static int run(String[] args, PrintStream out, PrintStream err) throws IOException {
    Args a = new Args("verify", args, Set.of("input", "output"));
    Configuration conf = new Configuration();
    Path dir = Storage.path(a.required("output"));
    FileSystem fs = Storage.fs(dir, conf);
    Path indexPath = new Path(dir, InputCheckpoint.INDEX);
    if (!fs.exists(indexPath)) {
      throw new UserError(a.get("output") + ": has no " + InputCheckpoint.INDEX + " (not a committed shardquant output)");
    }
    JsonNode index = JSON.readTree(Storage.readString(fs, indexPath));
    JsonNode meta = index.path("metadata");
    QuantConfig config;
    try {
      config = new QuantConfig(Recipe.fromCliName(meta.path("recipe").asText()), meta.path("group_size").asInt(),
          meta.path("bits").asInt());
    } catch (IllegalArgumentException e) {
      throw new UserError(indexPath + ": metadata does not name a shardquant recipe: " + e.getMessage());
    }
    Map<String, SafetensorsHeader> headers = new HashMap<>();
    Map<String, String> fileOfTensor = new HashMap<>();
    Set<String> quantized = new java.util.HashSet<>();
    for (String file : iterableValues(index.path("weight_map"))) {
      SafetensorsHeader h = Storage.readHeader(fs, new Path(dir, file));
      headers.put(file, h);
      for (String name : JSON.readValue(h.metadata().getOrDefault("tensor_names", "[]"), String[].class)) {
        fileOfTensor.put(name, file);
        if (!TorchaoMetadata.plain().equals(h.metadata().get(name))) {
          quantized.add(name);
        }
      }
    }
    InputCheckpoint input = InputCheckpoint.read(a.required("input"), conf);
    String include = quantized.stream().map(Pattern::quote).collect(Collectors.joining("|"));
    Plan plan = Planner.plan(input, new JobSpec(config, include, null, SHARD_BYTES, Long.MAX_VALUE));
    List<String> problems = new ArrayList<>();
    try (OpenFiles streams = new OpenFiles(conf)) {
      for (Plan.Tensor t : plan.tensors()) {
        String name = t.input().name();
        String file = fileOfTensor.get(name);
        if (file == null) {
          problems.add(name + ": in the input but not in the output");
          continue;
        }
        SafetensorsHeader h = headers.get(file);
        String wantMeta = t.quantized() ? TorchaoMetadata.quantized(config, t.input().shape(), t.input().dtype())
            : TorchaoMetadata.plain();
        if (!wantMeta.equals(h.metadata().get(name))) {
          problems.add(file + ": tensor '" + name + "': metadata " + h.metadata().get(name) + ", expected " + wantMeta);
          continue;
        }
        String problem = compareTensor(plan, t, h, new Path(dir, file), streams);
        if (problem != null) {
          problems.add(file + ": " + problem);
        }
      }
      for (String name : fileOfTensor.keySet()) {
        if (plan.tensors().stream().noneMatch(t -> t.input().name().equals(name))) {
          problems.add(fileOfTensor.get(name) + ": tensor '" + name + "' is not in the input");
        }
      }
    }
    problems.forEach(p -> out.println("MISMATCH " + p));
    out.printf("verify: %d tensors checked (%d quantized with %s), %d mismatches%n", plan.tensors().size(),
        quantized.size(), config, problems.size());
    return problems.isEmpty() ? Main.OK : Main.VERIFY_FAILED;
  }

  private static String compareTensor(Plan plan, Plan.Tensor t, SafetensorsHeader h, Path file, OpenFiles streams)
      throws IOException {
    for (Plan.StoredPart p : t.parts()) {
      TensorEntry e = h.entries().get(p.key());
      if (e == null || e.dtype() != p.dtype() || !java.util.Arrays.equals(e.shape(), p.shape())) {
        return "stored tensor " + p + " is " + (e == null ? "missing" : e.dtype().safetensorsName()
            + java.util.Arrays.toString(e.shape()));
      }
    }
    GlobalStats global = GlobalStats.NONE;
    if (t.quantized() && plan.config().recipe() == Recipe.NF4) {
      List<float[]> blocks = new ArrayList<>();
      for (int s = t.firstShard(); s < t.firstShard() + t.shardCount(); s++) {
        blocks.add(Nf4Ref.blockAbsmax(readRows(t.input(), plan.shards().get(s), streams)));
      }
      global = new GlobalStats(QuantizeJob.nf4Mean(t.input(), blocks));
    }
    FSDataInputStream output = streams.open(file.toString());
    for (int s = t.firstShard(); s < t.firstShard() + t.shardCount(); s++) {
      Plan.Shard shard = plan.shards().get(s);
      Tensor rows = readRows(t.input(), shard, streams);
      List<Tensor> pieces = new ArrayList<>();
      if (t.quantized()) {
        QuantizedTensor q = plan.config().recipe().kernel().quantize(rows, plan.config(), global, new QuantStats());
        t.parts().forEach(p -> pieces.add(q.part(p.dataName())));
      } else {
        pieces.add(rows);
      }
      for (int i = 0; i < pieces.size(); i++) {
        Tensor piece = pieces.get(i);
        Plan.StoredPart part = t.parts().get(i);
        String key = part.key();
        String[] problem = {null};
        // The plan laid the parts out in a file of its own; the output file has them where its header says.
        long dataStart = h.dataStart() + h.entries().get(key).begin() - part.offset();
        Placement.runs(plan, t, shard, i, piece.shape(), dataStart, (from, to, length) -> {
          if (problem[0] != null) {
            return;
          }
          ByteBuffer want = piece.bytes().duplicate();
          want.position(Math.toIntExact(from)).limit(Math.toIntExact(from + length));
          ByteBuffer got = ByteBuffer.allocate(Math.toIntExact(length));
          Storage.readFully(output, to, got);
          got.flip();
          int m = want.slice().mismatch(got);
          if (m >= 0) {
            problem[0] = "tensor '" + t.input().name() + "': stored '" + key + "' differs at file byte " + (to + m)
                + " (rows [" + shard.rowStart() + ", " + shard.rowEnd() + ") of the input)";
          }
        });
        if (problem[0] != null) {
          return problem[0];
        }
      }
    }
    return null;
  }

  private static Tensor readRows(InputTensor in, Plan.Shard shard, OpenFiles streams) throws IOException {
    long rows = shard.rowEnd() - shard.rowStart();
    ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(rows * in.rowBytes()));
    Storage.readFully(streams.open(in.file()), in.offset() + shard.rowStart() * in.rowBytes(), b);
    b.flip();
    long[] shape = in.shape();
    if (shape.length > 0) {
      shape[0] = rows;
    }
    return Tensor.of(in.dtype(), shape, b.order(java.nio.ByteOrder.LITTLE_ENDIAN));
  }

  private static Iterable<String> iterableValues(JsonNode map) {
    java.util.TreeSet<String> out = new java.util.TreeSet<>();
    map.fields().forEachRemaining(e -> out.add(e.getValue().asText()));
    return out;
  }
}
