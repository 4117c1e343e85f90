package shardquant.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.util.Set;
import shardquant.plan.JobSpec;
import shardquant.verify.VerifyJob;

/**
 * {@code shardquant verify --input PATH --output DIR [--backend auto|cpu|reference] [--master URL]
 * [--shard-bytes B] [--conf k=v ...]}: the arguments of {@link VerifyJob}, which checks, and what it
 * found. Exit 0 all agree, 3 a difference (each listed).
 */
final class VerifyOutput {
  private static final Set<String> OPTIONS = Set.of("input", "output", "backend", "master", "shard-bytes", "conf");

  private VerifyOutput() {}

  static int run(String[] args, PrintStream out, PrintStream err) throws IOException {
    Args a = new Args("verify", args, OPTIONS);
    VerifyJob.Result r = VerifyJob.run(new VerifyJob.Options(a.required("input"), a.required("output"), a.get("master"),
        a.get("backend") == null ? "auto" : a.get("backend"), a.bytes("shard-bytes", JobSpec.DEFAULT_SHARD_BYTES),
        a.sparkConf()), err);
    r.problems().forEach(p -> out.println("MISMATCH " + p));
    if (r.config() == null) {
      out.println("verify: the plain int4 layout is no recipe's output, so only its checksums are checked here; check its"
          + " bytes by round trip: repack it with --layout tile-packed and verify that output against the input");
      out.printf("verify: %d stored tensors' checksums checked, %d mismatches%n", r.stored(), r.problems().size());
    } else {
      r.backends().forEach((how, n) -> out.printf("verify: %d tensor%s %s%n", n, n == 1 ? "" : "s", how));
      out.printf("verify: %d tensors checked (%d quantized with %s), %d mismatches%n", r.tensors(), r.quantized(),
          r.config(), r.problems().size());
    }
    return r.problems().isEmpty() ? Main.OK : Main.VERIFY_FAILED;
  }
}
