package shardquant.benchmarks;

import java.util.List;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.bench.KernelBench;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.select.Backends;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * One row shard ({@link #shard()}: Llama-3-8B's q_proj, 4096x4096 bf16, 32 MiB, {@link KernelBench}'s
 * synthetic values) quantized by each recipe (all of {@link Recipe}, default parameters) on each backend,
 * in MiB/s of bf16 input; compare with {@link MemcpyBenchmark}. Where the cpu backend has no SIMD kernel
 * for a recipe it runs the reference, and the setup says so. A recipe's first pass (its tensor-wide statistics) is in
 * the setup, not the score. Short iterations: the reference takes about a second per shard. Scores are
 * per MiB ({@code @OperationsPerInvocation(MIB)}), so JMH's ops/s reads as MiB/s of bf16 input.
 */
@State(Scope.Benchmark)
public class QuantizeBenchmark extends MibPerSecond {
  /** The size of {@link #shard()} in MiB. */
  static final int MIB = 32;

  @Param
  public Recipe recipe;

  @Param({"reference", "cpu"})
  public String backend;

  private Backend b;
  private QuantConfig config;
  private Tensor shard;
  private GlobalStats global;

  @Setup
  public void setUp() {
    b = Backends.forName(backend);
    config = QuantConfig.of(recipe);
    shard = shard();
    global = KernelBench.firstPass(List.of(shard), config, b);
    if (!backend.equals(b.nameFor(recipe))) {
      System.out.println("# " + recipe.cliName() + " on " + backend + " runs " + b.nameFor(recipe));
    }
  }

  /** The benchmarks' input, in a direct buffer: the bench layer's q_proj, one whole row shard. */
  static Tensor shard() {
    Tensor t = KernelBench.layer(KernelBench.HIDDEN, "q_proj"::equals).get(0).weights();
    if (t.byteSize() != (long) MIB << 20) {
      throw new IllegalStateException("the benchmarks count " + MIB + " MiB per shard; " + t + " holds " + t.byteSize() + " bytes");
    }
    return t;
  }

  @Benchmark
  public QuantizedTensor quantize() {
    return b.quantize(shard, config, global, new QuantStats());
  }
}
