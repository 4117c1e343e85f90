package shardquant.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import shardquant.common.Format;
import shardquant.job.JobOptions;
import shardquant.job.QuantizeJob;
import shardquant.job.StatusLine;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.plan.JobSpec;

/**
 * {@code shardquant demo}: a synthetic Llama-shaped bf16 checkpoint (a Hugging Face model directory:
 * several files and an index, config and tokenizer; about 1 GB) quantized with the default recipe in
 * embedded Spark, with progress, the summary table and where everything is.
 */
final class Demo {
  static final Recipe DEFAULT_RECIPE = Recipe.INT4_TILE_PACKED;

  private Demo() {}

  static int run(String[] args, PrintStream out, PrintStream err) throws IOException {
    Args a = new Args("demo", args, Set.of("bytes", "dir", "master", "shard-bytes", "output-file-bytes"));
    long bytes = a.bytes("bytes", 1_000_000_000L);
    Path dir = a.get("dir") != null ? Path.of(a.get("dir")) : Files.createTempDirectory("shardquant-demo-");
    Path input = dir.resolve("input");
    Path output = dir.resolve("output");
    SyntheticCheckpoint.Shape shape = SyntheticCheckpoint.Shape.forBytes(bytes);
    if (Files.isRegularFile(input.resolve("model.safetensors.index.json"))) {
      err.println("demo: reusing the synthetic checkpoint in " + input);
    } else {
      err.printf("demo: writing a synthetic Llama-shaped bf16 checkpoint (%s, %s) to %s%n", shape,
          Format.bytes(shape.totalBytes()), input);
      long[] last = {0};
      StatusLine line = StatusLine.forConsole(err);
      try {
        SyntheticCheckpoint.write(input, shape, 4, 42, done -> {
          if (done - last[0] >= shape.totalBytes() / 10 || done == shape.totalBytes()) {
            last[0] = done;
            line.update("demo: " + Format.bytes(done) + "/" + Format.bytes(shape.totalBytes()) + " written");
          }
        });
      } finally {
        line.end();
      }
    }
    JobSpec spec = new JobSpec(QuantConfig.of(DEFAULT_RECIPE), null, null,
        a.bytes("shard-bytes", JobSpec.DEFAULT_SHARD_BYTES), a.bytes("output-file-bytes", 256L << 20));
    JobOptions o = new JobOptions(input.toString(), output.toString(), spec, a.get("master"), "auto", null, Map.of());
    err.println("demo: quantizing with " + spec.config() + " (torchao Int4WeightOnlyConfig, tile_packed_to_4d)");
    QuantizeJob.Result r = QuantizeJob.run(o, err);
    Summary.print(r, output.toString(), out);
    out.println("input:  " + input + "  (remove " + dir + " when done)");
    out.println("next:   bin/shardquant inspect " + output + "   |   bin/shardquant verify --input " + input + " --output "
        + output);
    return r.verified() ? Main.OK : Main.VERIFY_FAILED;
  }
}
