package shardquant.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import shardquant.kernels.golden.GoldenRunner;

/**
 * The {@code shardquant} command line. Exit status (DESIGN.md): 0 success, 2 bad arguments or bad
 * input (one line on stderr), 3 verification failed.
 */
public final class Main {
  static final int OK = 0;
  static final int BAD_INPUT = 2;
  static final int VERIFY_FAILED = 3;

  private static final String USAGE = String.join("\n",
      "usage: shardquant COMMAND [ARGS]",
      "  golden DIR    check every case of DIR/index.json against shardquant's numerics",
      "                (last line: golden: N passed, M failed)");

  private Main() {}

  public static void main(String[] args) {
    System.exit(run(args, System.out, System.err));
  }

  static int run(String[] args, PrintStream out, PrintStream err) {
    if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h") || args[0].equals("help")) {
      (args.length == 0 ? err : out).println(USAGE);
      return args.length == 0 ? BAD_INPUT : OK;
    }
    String[] rest = Arrays.copyOfRange(args, 1, args.length);
    try {
      switch (args[0]) {
        case "golden":
          return golden(rest, out, err);
        default:
          err.println("shardquant: unknown command '" + args[0] + "'\n" + USAGE);
          return BAD_INPUT;
      }
    } catch (IOException e) {
      err.println("shardquant " + args[0] + ": " + e.getMessage());
      return BAD_INPUT;
    }
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
}
