package shardquant.cli;

import java.io.PrintStream;
import java.util.Arrays;
import shardquant.job.Format;
import shardquant.job.QuantizeJob;
import shardquant.job.TensorReport;
import shardquant.plan.Plan;
import shardquant.plan.QuantizationConfig;

/** The table printed when a job ends: per tensor SQNR and max error, then totals, wall time and throughput. */
final class Summary {
  private Summary() {}

  static void print(QuantizeJob.Result r, String output, PrintStream out) {
    Plan plan = r.plan();
    int width = Math.max(6, r.reports().stream().mapToInt(t -> t.tensor().length()).max().orElse(6));
    out.printf("%-" + width + "s  %-14s %9s  %12s  %8s%n", "tensor", "shape", "SQNR dB", "max abs err", "clipped");
    double minSqnr = Double.POSITIVE_INFINITY;
    float maxErr = 0;
    for (TensorReport t : r.reports()) {
      String shape = plan.tensors().stream().filter(p -> p.input().name().equals(t.tensor())).findFirst()
          .map(p -> Arrays.toString(p.input().shape())).orElse("");
      out.printf("%-" + width + "s  %-14s %9.2f  %12.4g  %7.3f%%%n", t.tensor(), shape, t.sqnrDb(), t.maxAbsError(),
          100 * t.clippedFraction());
      minSqnr = Math.min(minSqnr, t.sqnrDb());
      maxErr = Math.max(maxErr, t.maxAbsError());
    }
    long copied = plan.tensors().stream().filter(t -> !t.reported()).count();
    double secs = r.wallNanos() / 1e9;
    out.printf("total: %d tensors %s (%s), %d copied unchanged; min SQNR %.2f dB, max abs error %.4g%n",
        r.reports().size(), plan.layout() != null ? "repacked" : "quantized", plan.describe(), copied, minSqnr, maxErr);
    out.printf("%s in -> %s out in %d files (%d written, %d kept from an earlier run); wall %.1f s, %s/s; Spark %s%n",
        Format.bytes(plan.totalInputBytes()), Format.bytes(plan.totalOutputBytes()), plan.files().size(), r.filesWritten(),
        r.filesKept(), secs, Format.bytes((long) (plan.totalInputBytes() / Math.max(secs, 1e-3))), r.master());
    out.println(QuantizationConfig.loaders(plan.config()));
    out.println((r.verified() ? "output: " : "output (NOT committed: verification failed, see the report): ") + output);
  }
}
