package shardquant.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
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
import shardquant.io.OpenFiles;
import shardquant.job.QuantizeJob;
import shardquant.io.Storage;
import shardquant.common.TensorReport;
import shardquant.kernels.quant.PartSpec;
import shardquant.plan.OutputFile;
import org.apache.hadoop.fs.FileSystem;
import shardquant.common.UserError;
import shardquant.kernels.select.Backends;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.TorchaoMetadata;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.safetensors.SafetensorsHeader;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;
import shardquant.commit.OutputDir;
import shardquant.plan.InputCheckpoint;
import shardquant.plan.ModelFiles;
import shardquant.plan.QuantizationConfig;
import shardquant.plan.InputTensor;
import shardquant.plan.JobSpec;
import shardquant.plan.Plan;
import shardquant.plan.Planner;

/**
 * {@code shardquant verify --input PATH --output DIR}: checks an output against its input three ways.
 * Every stored tensor's CRC-32C against the one recorded when its file was written; every quantized
 * tensor re-quantized with the reference kernels, shard by shard, against each stored byte and each
 * per-tensor metadata string (copied tensors must equal the input); and the report recomputed from the
 * stored tensors alone (dequantized against the input) against the one recorded. Runs on this machine,
 * without Spark, in O(shard) memory. Exit 0 all agree, 3 a difference (listed).
 */
final class VerifyOutput {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final long SHARD_BYTES = 64L << 20;

  private VerifyOutput() {}

  static int run(String[] args, PrintStream out, PrintStream err) throws IOException {
    Args a = new Args("verify", args, Set.of("input", "output"));
    Configuration conf = new Configuration();
    Path dir = Storage.path(a.required("output"));
    FileSystem fs = Storage.fs(dir, conf);
    Path indexPath = new Path(dir, InputCheckpoint.INDEX);
    if (!fs.exists(indexPath)) {
      throw new UserError(a.get("output") + ": has no " + InputCheckpoint.INDEX + " (not a committed shardquant output)");
    }
    InputCheckpoint.weightMap(fs, indexPath); // its file names are read from the directory: names, never paths
    JsonNode index = JSON.readTree(Storage.readString(fs, indexPath));
    JsonNode meta = index.path("metadata");
    if (!meta.has("recipe") && Int4Layout.PLAIN.cliName().equals(meta.path("layout").asText())) {
      return checksumsOnly(fs, dir, index, out);
    }
    QuantConfig config;
    try {
      config = new QuantConfig(Recipe.fromCliName(meta.path("recipe").asText()), meta.path("group_size").asInt(),
          meta.path("bits").asInt());
    } catch (IllegalArgumentException e) {
      throw new UserError(indexPath + ": metadata does not name a shardquant recipe: " + e.getMessage());
    }
    Map<String, SafetensorsHeader> headers = new HashMap<>();
    List<String> checksumProblems = new ArrayList<>();
    Map<String, String> fileOfTensor = new HashMap<>();
    Set<String> quantized = new java.util.HashSet<>();
    for (String file : iterableValues(index.path("weight_map"))) {
      SafetensorsHeader h = Storage.readHeader(fs, new Path(dir, file));
      headers.put(file, h);
      checksumProblems.addAll(checkChecksums(fs, new Path(dir, file), h));
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
    InputCheckpoint input = InputCheckpoint.read(a.required("input"), conf);
    String include = quantized.stream().map(Pattern::quote).collect(Collectors.joining("|"));
    Plan plan = Planner.plan(input, new JobSpec(config, include, null, SHARD_BYTES, Long.MAX_VALUE));
    List<String> problems = new ArrayList<>(checksumProblems);
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
    problems.addAll(checkModelFiles(input, conf, fs, dir, index, plan));
    OutputDir.unlisted(fs, dir, index).forEach(n -> problems.add(n + ": in the output directory but not in its index"));
    problems.forEach(p -> out.println("MISMATCH " + p));
    out.printf("verify: %d tensors checked (%d quantized with %s), %d mismatches%n", plan.tensors().size(),
        quantized.size(), config, problems.size());
    return problems.isEmpty() ? Main.OK : Main.VERIFY_FAILED;
  }

  /**
   * A repack into the plain int4 form: no recipe writes it, so there is nothing to re-quantize and compare
   * with; its stored bytes are checked against their checksums, and its values by round trip.
   */
  private static int checksumsOnly(FileSystem fs, Path dir, JsonNode index, PrintStream out) throws IOException {
    List<String> problems = new ArrayList<>();
    int stored = 0;
    for (String file : iterableValues(index.path("weight_map"))) {
      SafetensorsHeader h = Storage.readHeader(fs, new Path(dir, file));
      stored += h.entries().size();
      problems.addAll(checkChecksums(fs, new Path(dir, file), h));
    }
    problems.forEach(p -> out.println("MISMATCH " + p));
    out.println("verify: the plain int4 layout is no recipe's output, so only its checksums are checked here; check its"
        + " bytes by round trip: repack it with --layout tile-packed and verify that output against the input");
    out.printf("verify: %d stored tensors' checksums checked, %d mismatches%n", stored, problems.size());
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
    if (t.quantized() && plan.config().recipe().firstPass().isPresent()) {
      List<float[]> partials = new ArrayList<>();
      for (int s = t.firstShard(); s < t.firstShard() + t.shardCount(); s++) {
        partials.add(Backends.reference().firstPass(plan.config(), readRows(t.input(), plan.shards().get(s), streams)));
      }
      global = QuantizeJob.combine(t.input(), plan.config(), partials);
    }
    String output = file.toString();
    QuantStats fromFiles = new QuantStats();
    for (int s = t.firstShard(); s < t.firstShard() + t.shardCount(); s++) {
      Plan.Shard shard = plan.shards().get(s);
      Tensor rows = readRows(t.input(), shard, streams);
      List<Tensor> want = new ArrayList<>();
      if (t.quantized()) {
        QuantizedTensor q = plan.config().recipe().kernel().quantize(rows, plan.config(), global, new QuantStats());
        t.parts().forEach(p -> want.add(q.part(p.dataName())));
      } else {
        want.add(rows);
      }
      Map<String, Tensor> stored = new java.util.LinkedHashMap<>();
      for (int i = 0; i < want.size(); i++) {
        Plan.StoredPart part = t.parts().get(i);
        Tensor got = readPiece(plan, t, shard, i, want.get(i).shape(), h, streams, output);
        int m = want.get(i).bytes().mismatch(got.bytes());
        if (m >= 0) {
          return "tensor '" + t.input().name() + "': stored '" + part.key() + "' differs from re-quantizing the input"
              + " at byte " + m + " of its piece for rows [" + shard.rowStart() + ", " + shard.rowEnd() + ")";
        }
        stored.put(part.dataName(), got);
      }
      if (t.quantized()) {
        Tensor dq = new QuantizedTensor(plan.config(), rows.shape(), rows.dtype(), stored).dequantize(rows.dtype());
        fromFiles.addRows(rows, dq, new long[Math.toIntExact(rows.rows())], rows.rows(), rows.cols());
      }
    }
    if (t.quantized()) {
      String problem = compareReport(t.input().name(), fromFiles, h);
      if (problem != null) {
        return problem;
      }
    }
    return null;
  }

  /** A shard's piece of part {@code i}, gathered from the output file where {@link Placement} put it. */
  private static Tensor readPiece(Plan plan, Plan.Tensor t, Plan.Shard shard, int i, long[] pieceShape,
      SafetensorsHeader h, OpenFiles streams, String output) throws IOException {
    Plan.StoredPart part = t.parts().get(i);
    // The plan laid the parts out in a file of its own; the output file has them where its header says.
    long partStart = h.dataStart() + h.entries().get(part.key()).begin();
    ByteBuffer piece = ByteBuffer.allocate(Math.toIntExact(Tensor.numel(pieceShape) * part.dtype().byteSize()))
        .order(java.nio.ByteOrder.LITTLE_ENDIAN);
    if (part.rowDim() == PartSpec.REPLICATED) {
      streams.readFully(output, partStart, piece.duplicate());
    } else {
      Placement.runs(plan, t, shard, i, pieceShape, partStart - part.offset(), (from, to, length) -> {
        ByteBuffer run = piece.duplicate();
        run.position(Math.toIntExact(from)).limit(Math.toIntExact(from + length));
        streams.readFully(output, to, run);
      });
    }
    return Tensor.of(part.dtype(), pieceShape, piece);
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

  /** Every stored tensor's CRC-32C against the one its file's header recorded when it was written. */
  private static List<String> checkChecksums(FileSystem fs, Path file, SafetensorsHeader h) throws IOException {
    List<String> problems = new ArrayList<>();
    Map<String, String> recorded = OutputFile.checksumsIn(h.metadata());
    if (recorded.isEmpty()) {
      return List.of(file.getName() + ": records no checksums (not written by this shardquant version)");
    }
    try (FSDataInputStream in = fs.open(file)) {
      byte[] buf = new byte[1 << 20];
      for (TensorEntry e : h.entries().values()) {
        java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
        for (long done = 0; done < e.byteSize(); ) {
          int n = (int) Math.min(buf.length, e.byteSize() - done);
          in.readFully(h.dataStart() + e.begin() + done, buf, 0, n);
          crc.update(buf, 0, n);
          done += n;
        }
        String got = OutputFile.checksum((int) crc.getValue());
        if (!got.equals(recorded.get(e.name()))) {
          problems.add(file.getName() + ": stored '" + e.name() + "' has CRC-32C " + got + " but its header recorded "
              + recorded.get(e.name()) + " when it was written (the file changed since)");
        }
      }
    }
    return problems;
  }

  private static Tensor readRows(InputTensor in, Plan.Shard shard, OpenFiles streams) throws IOException {
    long rows = shard.rowEnd() - shard.rowStart();
    ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(rows * in.rowBytes()));
    streams.readFully(in.file(), in.offset() + shard.rowStart() * in.rowBytes(), b);
    b.flip();
    long[] shape = in.shape();
    if (shape.length > 0) {
      shape[0] = rows;
    }
    return Tensor.of(in.dtype(), shape, b.order(java.nio.ByteOrder.LITTLE_ENDIAN));
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

  private static Iterable<String> iterableValues(JsonNode map) {
    java.util.TreeSet<String> out = new java.util.TreeSet<>();
    map.fields().forEachRemaining(e -> out.add(e.getValue().asText()));
    return out;
  }
}
