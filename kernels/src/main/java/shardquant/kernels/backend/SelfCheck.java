package shardquant.kernels.backend;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * A faster backend's kernels held against a trusted backend before their first shard: small synthetic
 * shards of each recipe are quantized by both, and the parts (names, dtypes, shapes, bytes) and the
 * verification sums must be equal. {@link Backends} runs it once per JVM on the CPU SIMD kernels against
 * the reference; {@link shardquant.kernels.backend.cuda.CudaBackend} on each GPU against the CPU backend.
 * A recipe whose kernel differs or throws anything at all (a {@code LinkageError} from a Vector API this
 * JVM does not have, an {@code InternalError} from the JIT) is reported, and its caller runs it on the
 * trusted backend: a new JVM, driver or build costs speed, never a wrong checkpoint or a failed job.
 */
public final class SelfCheck {
  private SelfCheck() {}

  /** A candidate's quantize; null where it declines the shard (the CUDA kernels send some to the CPU). */
  @FunctionalInterface
  public interface Quantizer {
    QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats);
  }

  /** A candidate's first-pass partial; null where it declines the shard. */
  @FunctionalInterface
  public interface FirstPasser {
    float[] firstPass(QuantConfig c, Tensor rows);
  }

  /**
   * [64, 512] of bf16, f16 and f32: rows of magnitudes 1e-3 to 10, one outlier column, every recipe's
   * default group size and row alignment (twice the largest, 16384 elements).
   */
  public static List<Tensor> regular() {
    Random r = new Random(5);
    List<Tensor> samples = new ArrayList<>();
    for (DType d : new DType[] {DType.BF16, DType.F16, DType.F32}) {
      samples.add(sample(d, 64, 512, r));
    }
    return samples;
  }

  /**
   * Smaller shards of every path of the CPU kernels: [32, 512] of bf16, f16 and f32 (as {@link #regular()},
   * the largest row alignment once), [5, 300] of each (a tail of 4 after whole vectors, rows longer than the SIMD kernels'
   * 256-element chunk, int4-tile-packed's padding of N and K, a zero row), and bf16 [48, 384] (int4-cpu's
   * short last block of 48 rows, three groups a row). Cold, on the SIMD kernels and the reference, this
   * takes about a second, most of it the JIT warming up the kernels as the first shards would.
   */
  public static List<Tensor> awkward() {
    Random r = new Random(6);
    List<Tensor> samples = new ArrayList<>();
    for (DType d : new DType[] {DType.BF16, DType.F16, DType.F32}) {
      samples.add(sample(d, 32, 512, r));
      samples.add(sample(d, 5, 300, r));
    }
    samples.add(sample(DType.BF16, 48, 384, r));
    return samples;
  }

  /** Row i of magnitude 10^(i % 5 - 3) (every seventh row zero: the eps scale), column 7 thirty times larger. */
  private static Tensor sample(DType d, int rows, int cols, Random r) {
    float[] v = new float[rows * cols];
    for (int i = 0; i < v.length; i++) {
      int row = i / cols;
      v[i] = row % 7 == 6 ? 0f : (float) (r.nextGaussian() * (i % cols == 7 ? 30 : 1) * Math.pow(10, row % 5 - 3));
    }
    return Tensor.fromFloats(d, new long[] {rows, cols}, v);
  }

  /**
   * Each of {@code recipes} (default settings) on each sample it takes, by {@code candidate} and by
   * {@code trusted}; returns the recipes whose candidate differed or threw, with why (one line).
   */
  public static Map<Recipe, String> failures(Collection<Recipe> recipes, List<Tensor> samples, Backend trusted,
      Quantizer candidate, FirstPasser candidateFirstPass) {
    Map<Recipe, String> failed = new EnumMap<>(Recipe.class);
    for (Recipe recipe : recipes) {
      QuantConfig c = QuantConfig.of(recipe);
      for (Tensor w : samples) {
        if (recipe.kernel().refusal(w.rows(), w.cols(), w.dtype(), c) != null) {
          continue;
        }
        String problem;
        try {
          problem = compare(trusted, candidate, candidateFirstPass, w, c);
        } catch (Throwable e) { // whatever a broken kernel throws, LinkageError and JIT errors included
          problem = "the kernel failed on a " + w + ": " + firstLine(e);
        }
        if (problem != null) {
          failed.put(recipe, problem);
          break;
        }
      }
    }
    return failed;
  }

  /** This JVM, as log lines name it: {@code Java 25.0.3}. */
  public static String runtime() {
    return "Java " + System.getProperty("java.version");
  }

  /** {@code e} and its message's first line (a failure is reported in one line). */
  public static String firstLine(Throwable e) {
    String m = e.getMessage();
    return e.getClass().getName() + (m == null ? "" : ": " + m.lines().findFirst().orElse(""));
  }

  private static String compare(Backend trusted, Quantizer candidate, FirstPasser candidateFirstPass, Tensor w,
      QuantConfig c) {
    GlobalStats g = GlobalStats.NONE;
    if (c.recipe().firstPass().isPresent()) {
      float[] want = trusted.firstPass(c, w);
      if (!Arrays.equals(want, candidateFirstPass.firstPass(c, w))) {
        return "the first pass of a " + w + " differs";
      }
      g = c.recipe().firstPass().get().combine(w.dtype(), List.of(want));
    }
    QuantStats wantStats = new QuantStats();
    QuantizedTensor want = trusted.quantize(w, c, g, wantStats);
    QuantStats gotStats = new QuantStats();
    QuantizedTensor got = candidate.quantize(w, c, g, gotStats);
    if (got == null) {
      return "the kernel sent a finite " + w + " elsewhere";
    }
    if (!want.parts().keySet().equals(got.parts().keySet())) {
      return "the parts of a " + w + " differ: " + got.parts().keySet() + ", not " + want.parts().keySet();
    }
    for (Map.Entry<String, Tensor> e : want.parts().entrySet()) {
      Tensor a = e.getValue();
      Tensor b = got.parts().get(e.getKey());
      if (a.dtype() != b.dtype() || !Arrays.equals(a.shape(), b.shape()) || a.bytes().mismatch(b.bytes()) >= 0) {
        return "part " + e.getKey() + " of a " + w + " differs";
      }
    }
    return wantStats.equals(gotStats) ? null : "the verification sums of a " + w + " differ";
  }
}
