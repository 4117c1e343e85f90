package shardquant.cli;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import shardquant.commit.OutputDir;
import shardquant.common.Format;
import shardquant.common.TensorReport;
import shardquant.job.QuantizeJob;
import shardquant.plan.Plan;
import shardquant.plan.QuantizationConfig;

/**
 * The table printed when a job ends: SQNR and max error of every tensor when there are few, else of the
 * worst (a real model has hundreds; the report file has them all), then totals, wall time and throughput.
 */
final class Summary {
  /** Up to this many tensors are all listed, in the plan's order. */
  static final int ALL_UP_TO = 12;
  /** Beyond {@link #ALL_UP_TO}, the tensors listed: the lowest SQNR first. */
  static final int WORST = 10;
  /** Worst first: a tensor with non-finite values (verification failed), then the lowest SQNR (NaN lowest). */
  private static final Comparator<TensorReport> WORST_FIRST = Comparator.comparing((TensorReport t) -> t.nonFinite() == 0)
      .thenComparingDouble(t -> Double.isNaN(t.sqnrDb()) ? Double.NEGATIVE_INFINITY : t.sqnrDb());

  private Summary() {}

  static void print(QuantizeJob.Result r, String output, PrintStream out) {
    Plan plan = r.plan();
    List<TensorReport> rows = r.reports().size() <= ALL_UP_TO ? r.reports()
        : r.reports().stream().sorted(WORST_FIRST).limit(WORST).toList();
    int width = Math.max(6, rows.stream().mapToInt(t -> t.tensor().length()).max().orElse(6));
    out.printf("%-" + width + "s  %-14s %9s  %12s  %8s%n", "tensor", "shape", "SQNR dB", "max abs err", "clipped");
    for (TensorReport t : rows) {
      String shape = plan.tensors().stream().filter(p -> p.input().name().equals(t.tensor())).findFirst()
          .map(p -> Arrays.toString(p.input().shape())).orElse("");
      out.printf("%-" + width + "s  %-14s %9.2f  %12.4g  %7.3f%%%n", t.tensor(), shape, t.sqnrDb(), t.maxAbsError(),
          100 * t.clippedFraction());
    }
    if (rows.size() < r.reports().size()) {
      out.printf("(the %d lowest SQNR; %d more in %s/%s)%n", rows.size(), r.reports().size() - rows.size(),
          output.replaceFirst("/+$", ""), OutputDir.REPORT);
    }
    double minSqnr = r.reports().stream().mapToDouble(TensorReport::sqnrDb).reduce(Double.POSITIVE_INFINITY, Math::min);
    double maxErr = r.reports().stream().mapToDouble(TensorReport::maxAbsError).reduce(0, Math::max);
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
