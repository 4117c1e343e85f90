package shardquant.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Set;
import shardquant.common.UserError;
import shardquant.job.JobOptions;
import shardquant.job.QuantizeJob;
import shardquant.kernels.golden.GoldenRunner;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.plan.JobSpec;

/**
 * The {@code shardquant} command line, also the Spark application's main class
 * ({@code spark-submit --class shardquant.cli.Main shardquant.jar quantize ...}). Exit status
 * (DESIGN.md): 0 success, 2 bad arguments or bad input (one line on stderr), 3 verification failed.
 */
public final class Main {
  static final int OK = 0;
  static final int BAD_INPUT = 2;
  static final int VERIFY_FAILED = 3;
  static final int INTERNAL = 1;
  /** Environment variable: set, errors come with their stack trace and the logs with their details. */
  private static final String DEBUG_ENV = "SHARDQUANT_DEBUG";

  private static final Set<String> QUANTIZE_OPTIONS = Set.of("input", "output", "recipe", "recipe-file", "group-size",
      "bits", "master", "backend", "shard-bytes", "output-file-bytes", "include", "exclude", "dump-shards", "conf");
  private static final Set<String> REPACK_OPTIONS = Set.of("input", "output", "layout", "master", "backend", "shard-bytes",
      "output-file-bytes", "conf");

  private static final String USAGE = String.join("\n",
      "usage: shardquant COMMAND [ARGS]",
      "  quantize --input PATH --output DIR --recipe NAME [--group-size G] [--bits N] [--master URL]",
      "           [--backend auto|cpu|reference|cuda] [--shard-bytes B] [--output-file-bytes B] [--include REGEX]",
      "           [--exclude REGEX] [--recipe-file FILE] [--dump-shards DIR] [--conf spark.key=value ...]",
      "      quantize a safetensors checkpoint (file, directory, or directory with an index; local or any",
      "      Hadoop URI) into a torchao safetensors checkpoint. Recipes: " + Arrays.stream(Recipe.values()).map(Recipe::cliName).toList(),
      "  repack --input DIR --output DIR --layout " + String.join("|", Arrays.stream(Int4Layout.values()).map(Int4Layout::cliName).toList()),
      "           [--master URL] [--backend auto|cpu|cuda] [--shard-bytes B] [--output-file-bytes B] [--conf ...]",
      "      convert an int4-tile-packed or int4-cpu checkpoint (or an earlier repack's) into another int4 layout,",
      "      bit-exact, without re-quantizing; plain tensors are copied (local input directories only, for now)",
      "  demo [--bytes B] [--dir DIR] [--master URL] [--shard-bytes B] [--output-file-bytes B]",
      "      write a synthetic Llama-shaped checkpoint (1 GB; into a new temporary directory unless --dir)",
      "      and quantize it with int4-tile-packed in embedded Spark",
      "  inspect PATH                     tensors, dtypes, shapes and recipes of an input or output checkpoint",
      "  verify --input PATH --output DIR [--backend auto|cpu|reference] [--master URL] [--shard-bytes B] [--conf ...]",
      "      a Spark job: check the output's checksums, re-quantize the input (auto: with kernels other than those",
      "      that wrote it) and compare byte for byte, and recompute the report from the stored tensors",
      "  golden DIR                       check every case of DIR/index.json against shardquant's numerics",
      "                                   (last line: golden: N passed, M failed)",
      "  bench [--recipe NAME] [--backend cpu|reference] [--threads T] [--small]",
      "      each kernel's one-thread input throughput on a Llama-3-8B layer (bf16, 436 MB), against memcpy",
      "  bench job [--bytes B] [--small]  the local-mode job on a synthetic checkpoint (2 GiB) against cp",
      "exit status: 0 done, 2 bad arguments or input (one line on stderr), 3 verification failed");

  private Main() {}

  public static void main(String[] args) {
    ConsoleLog.install(System.getenv(DEBUG_ENV) != null);
    int status = run(args, System.out, System.err);
    System.out.flush();
    System.exit(status);
  }

  static int run(String[] args, PrintStream out, PrintStream err) {
    if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h") || args[0].equals("help")) {
      (args.length == 0 ? err : out).println(USAGE);
      return args.length == 0 ? BAD_INPUT : OK;
    }
    String command = args[0];
    String[] rest = Arrays.copyOfRange(args, 1, args.length);
    try {
      return switch (command) {
        case "quantize" -> quantize(rest, out, err);
        case "repack" -> repack(rest, out, err);
        case "demo" -> Demo.run(rest, out, err);
        case "inspect" -> Inspect.run(rest, out);
        case "verify" -> VerifyOutput.run(rest, out, err);
        case "golden" -> golden(rest, out, err);
        case "bench" -> Bench.run(rest, out, err);
        default -> {
          err.println("shardquant: unknown command '" + command + "'\n" + USAGE);
          yield BAD_INPUT;
        }
      };
    } catch (UserError e) {
      err.println("shardquant " + command + ": " + oneLine(e.getMessage()));
      return BAD_INPUT;
    } catch (IOException e) {
      err.println("shardquant " + command + ": " + oneLine(e.getMessage()));
      return BAD_INPUT;
    } catch (RuntimeException e) {
      String user = UserError.findIn(e);
      if (user != null) {
        err.println("shardquant " + command + ": " + oneLine(user));
        return BAD_INPUT;
      }
      err.println("shardquant " + command + ": internal error: " + String.valueOf(e.getMessage()).lines().findFirst().orElse(e.toString())
          + " (" + e.getClass().getName() + "; set " + DEBUG_ENV + "=1 for the stack trace)");
      if (System.getenv(DEBUG_ENV) != null) {
        e.printStackTrace(err);
      }
      return INTERNAL;
    }
  }

  /** The job's options from quantize-style arguments. */
  static JobOptions jobOptions(String command, String[] args) {
    Args a = new Args(command, args, QUANTIZE_OPTIONS);
    String recipeName = a.get("recipe");
    if (recipeName == null) {
      throw new UserError(command + ": --recipe is required (one of "
          + Arrays.stream(Recipe.values()).map(Recipe::cliName).toList() + "), or --recipe-file");
    }
    Recipe recipe;
    QuantConfig config;
    try {
      recipe = Recipe.fromCliName(recipeName);
      Integer group = a.integer("group-size");
      Integer bits = a.integer("bits");
      config = new QuantConfig(recipe, group == null ? recipe.defaultGroupSize() : group,
          bits == null ? recipe.defaultBits() : bits);
    } catch (IllegalArgumentException e) {
      throw new UserError(command + ": " + e.getMessage());
    }
    JobSpec spec = new JobSpec(config, a.get("include"), a.get("exclude"),
        a.bytes("shard-bytes", JobSpec.DEFAULT_SHARD_BYTES), a.bytes("output-file-bytes", JobSpec.DEFAULT_OUTPUT_FILE_BYTES));
    return new JobOptions(a.required("input"), a.required("output"), spec, a.get("master"),
        a.get("backend") == null ? "auto" : a.get("backend"),
        a.get("dump-shards") == null ? null : Path.of(a.get("dump-shards")).toAbsolutePath().toString(), a.sparkConf());
  }

  private static int quantize(String[] args, PrintStream out, PrintStream err) throws IOException {
    JobOptions o = jobOptions("quantize", args);
    QuantizeJob.Result r = QuantizeJob.run(o, err);
    Summary.print(r, o.output(), out);
    return r.verified() ? OK : VERIFY_FAILED;
  }

  private static int repack(String[] args, PrintStream out, PrintStream err) throws IOException {
    Args a = new Args("repack", args, REPACK_OPTIONS);
    Int4Layout layout;
    try {
      layout = Int4Layout.fromCliName(a.required("layout"));
    } catch (IllegalArgumentException e) {
      throw new UserError("repack: --layout: " + e.getMessage());
    }
    JobSpec sizes = new JobSpec(null, null, null, a.bytes("shard-bytes", JobSpec.DEFAULT_SHARD_BYTES),
        a.bytes("output-file-bytes", JobSpec.DEFAULT_OUTPUT_FILE_BYTES));
    JobOptions o = new JobOptions(a.required("input"), a.required("output"), sizes, a.get("master"),
        a.get("backend") == null ? "auto" : a.get("backend"), null, a.sparkConf());
    QuantizeJob.Result r = QuantizeJob.repack(o, layout, err);
    Summary.print(r, o.output(), out);
    return r.verified() ? OK : VERIFY_FAILED;
  }

  private static int golden(String[] args, PrintStream out, PrintStream err) throws IOException {
    if (args.length != 1) {
      err.println("shardquant golden: expected one argument, the golden directory (holding index.json); got "
          + args.length);
      return BAD_INPUT;
    }
    Path dir = Path.of(args[0]);
    if (!Files.isDirectory(dir)) {
      err.println("shardquant golden: " + dir + " is not a directory");
      return BAD_INPUT;
    }
    GoldenRunner.Result r = GoldenRunner.run(dir, out);
    return r.failed() == 0 ? OK : VERIFY_FAILED;
  }

  /**
   * The error as one line: names from input files may hold line breaks and other control characters,
   * shown escaped (a line break as backslash-n, others as backslash-u and four hex digits).
   */
  static String oneLine(String message) {
    StringBuilder sb = new StringBuilder();
    String m = String.valueOf(message);
    for (int i = 0; i < m.length(); i++) {
      char c = m.charAt(i);
      if (c == '\n') {
        sb.append("\\n");
      } else if (c == '\r') {
        sb.append("\\r");
      } else if (c < 0x20 || c == 0x7f) {
        sb.append(String.format("\\u%04x", (int) c));
      } else {
        sb.append(c);
      }
    }
    return sb.toString();
  }
}
