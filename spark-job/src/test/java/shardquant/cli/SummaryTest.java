package shardquant.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.common.TensorReport;
import shardquant.job.QuantizeJob;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.plan.InputCheckpoint;
import shardquant.plan.JobSpec;
import shardquant.plan.Plan;
import shardquant.plan.Planner;

/** The end-of-run table: every tensor when there are few; the worst and a pointer to the report when many. */
class SummaryTest {
  @TempDir Path dir;

  @Test
  void aFewTensorsAreAllListedInThePlansOrder() throws IOException {
    Plan plan = plan(".*\\.self_attn\\.[qk]_proj\\.weight");
    List<TensorReport> reports = reports(plan, new double[] {25, 21, 23, 22});
    List<String> lines = print(plan, reports);
    assertEquals(List.of("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
        "model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight"), tensorColumn(lines));
    assertFalse(lines.stream().anyMatch(l -> l.contains("more in")), String.join("\n", lines));
    assertTrue(lines.contains("output: /out"), String.join("\n", lines));
  }

  @Test
  void manyTensorsShowTheLowestSqnrAndSayWhereTheRestAre() throws IOException {
    Plan plan = plan(null);
    double[] sqnr = new double[14];
    for (int i = 0; i < sqnr.length; i++) {
      sqnr[i] = 30 - i; // the last tensors of the plan are the worst
    }
    sqnr[2] = Double.NaN; // lower than any number
    List<TensorReport> reports = reports(plan, sqnr);
    TensorReport good = reports.get(1); // but for its non-finite values (verification failed), which put it first
    reports.set(1, new TensorReport(good.tensor(), 40, good.maxAbsError(), 0, good.elements(), 1, good.backend(), 1));
    List<String> lines = print(plan, reports);
    List<String> expected = new ArrayList<>(List.of(reports.get(1).tensor(), reports.get(2).tensor()));
    for (int i = 13; expected.size() < Summary.WORST; i--) {
      expected.add(reports.get(i).tensor());
    }
    assertEquals(expected, tensorColumn(lines), String.join("\n", lines));
    assertTrue(lines.contains("(the 10 lowest SQNR; 4 more in /out/quantization_report.json)"), String.join("\n", lines));
    assertTrue(lines.stream().anyMatch(l -> l.startsWith("total: 14 tensors quantized")), String.join("\n", lines));
  }

  private Plan plan(String include) throws IOException {
    SyntheticCheckpoint.write(dir, new SyntheticCheckpoint.Shape(2, 256, 256, 4, 1, 512), 1, 1, null);
    return Planner.plan(InputCheckpoint.read(dir.toString(), new Configuration()), new JobSpec(
        QuantConfig.of(Recipe.INT8_WEIGHT_ONLY), include, null, JobSpec.DEFAULT_SHARD_BYTES, JobSpec.DEFAULT_OUTPUT_FILE_BYTES));
  }

  /** One report per quantized tensor of the plan, in its order, with these SQNRs. */
  private static List<TensorReport> reports(Plan plan, double[] sqnr) {
    List<TensorReport> out = new ArrayList<>();
    for (Plan.Tensor t : plan.tensors()) {
      if (t.reported()) {
        out.add(new TensorReport(t.input().name(), sqnr[out.size()], 0.01f, 0, 1000, 0, "reference", 1));
      }
    }
    assertEquals(sqnr.length, out.size());
    return out;
  }

  private static List<String> print(Plan plan, List<TensorReport> reports) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    Summary.print(new QuantizeJob.Result(plan, reports, 0, 1, 1_000_000_000L, true, "local[2]"), "/out",
        new PrintStream(bytes, true, StandardCharsets.UTF_8));
    return bytes.toString(StandardCharsets.UTF_8).lines().toList();
  }

  /** The first column of the table's rows: between the header and the first line that is not a tensor. */
  private static List<String> tensorColumn(List<String> lines) {
    assertTrue(lines.get(0).startsWith("tensor "), lines.get(0));
    return lines.stream().skip(1).takeWhile(l -> l.startsWith("model.")).map(l -> l.split("\\s+")[0]).toList();
  }
}
