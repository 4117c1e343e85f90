package shardquant.kernels.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.select.Backends;
import shardquant.kernels.bench.KernelBench.Figures;
import shardquant.kernels.bench.KernelBench.Shard;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** The harness's figures are computed from what it timed and counted: a fake clock makes every figure exact. */
class KernelBenchTest {
  private static final long HIDDEN = 256;
  private static final long SHARD_BYTES = 64 << 10;
  /** Each clock read advances the clock by this; each shard quantized by {@link #KERNEL}. */
  private static final long READ = 1_000;
  private static final long KERNEL = 7_000;

  /** The CPU backend, on a clock it advances by {@link #KERNEL} per shard; skips the last shard if told to. */
  private static final class Timed implements Backend {
    final AtomicLong clock;
    final int skipEvery;
    int calls;

    Timed(AtomicLong clock, int skipEvery) {
      this.clock = clock;
      this.skipEvery = skipEvery;
    }

    @Override
    public String name() {
      return "timed";
    }

    @Override
    public String nameFor(Recipe recipe) {
      return name();
    }

    @Override
    public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
      clock.addAndGet(KERNEL);
      QuantizedTensor q = Backends.cpu().quantize(rows, c, global, skipEvery > 0 && ++calls % skipEvery == 0 ? new QuantStats() : stats);
      return q;
    }

    @Override
    public float[] firstPass(QuantConfig c, Tensor rows) {
      return Backends.cpu().firstPass(c, rows);
    }
  }

  private static KernelBench bench(AtomicLong clock) {
    return new KernelBench(HIDDEN, SHARD_BYTES, () -> clock.getAndAdd(READ));
  }

  @Test
  void memcpyRatioIsTheCopysTimeOverTheKernelsAndBytesAreTheWholeLayer() {
    AtomicLong clock = new AtomicLong();
    KernelBench bench = bench(clock);
    QuantConfig c = QuantConfig.of(Recipe.INT8_WEIGHT_ONLY);
    Timed backend = new Timed(clock, 0);
    List<Shard> shards = bench.shards(c, backend);
    Figures f = bench.measure("int8-weight-only timed", shards, c, backend);

    long layerBytes = KernelBench.layer(HIDDEN, name -> true).stream().mapToLong(m -> m.weights().byteSize()).sum();
    assertEquals(layerBytes, bench.layerBytes());
    assertEquals(layerBytes, f.bytes());
    // between t0 and t1 the clock is read once; between t1 and t2 once, plus every shard's kernel
    assertEquals(READ, f.copyNanos());
    assertEquals(READ + KERNEL * shards.size(), f.kernelNanos());
    assertEquals((double) READ / (READ + KERNEL * shards.size()), f.ofMemcpy(), 1e-15);
    assertEquals((double) layerBytes / (READ + KERNEL * shards.size()), f.gigabytesPerSecond(), 1e-15);
    assertEquals("bench int8-weight-only timed: " + KernelBench.digits3(f.gigabytesPerSecond()) + " GB/s input, "
        + KernelBench.digits3(f.ofMemcpy()) + " of memcpy", f.line());
  }

  @Test
  void shardsCoverEveryRowAsTheJobCutsThemLargestFirst() {
    KernelBench bench = bench(new AtomicLong());
    QuantConfig c = QuantConfig.of(Recipe.INT4_TILE_PACKED);
    List<Shard> shards = bench.shards(c, Backends.cpu());
    List<KernelBench.Matrix> layer = KernelBench.layer(HIDDEN, name -> true);
    assertEquals(layer.stream().mapToLong(m -> m.weights().numel()).sum(), KernelBench.elements(shards));
    long expected = 0;
    for (KernelBench.Matrix m : layer) {
      Tensor w = m.weights();
      long per = Tensor.rowsPerShard(w.cols() * 2, SHARD_BYTES, c.recipe().kernel().rowAlignment(w.cols(), c));
      expected += (w.rows() + per - 1) / per;
    }
    assertEquals(expected, shards.size());
    assertTrue(shards.size() > layer.size(), "the test's shard size cuts some matrix: " + shards.size());
    for (int i = 1; i < shards.size(); i++) {
      assertTrue(shards.get(i - 1).rows().byteSize() >= shards.get(i).rows().byteSize(), "largest first at " + i);
    }
    shards.forEach(s -> assertSame(GlobalStats.NONE, s.global()));
  }

  @Test
  void nf4ShardsCarryTheirTensorsScalerMean() {
    KernelBench bench = new KernelBench(HIDDEN, 1L << 30);
    List<Shard> shards = bench.shards(QuantConfig.of(Recipe.NF4), Backends.cpu());
    assertEquals(7, shards.size(), "one shard per matrix");
    shards.forEach(s -> assertNotEquals(GlobalStats.NONE, s.global()));
  }

  @Test
  void aKernelThatSkipsElementsIsNotTimed() {
    AtomicLong clock = new AtomicLong();
    KernelBench bench = bench(clock);
    QuantConfig c = QuantConfig.of(Recipe.INT8_WEIGHT_ONLY);
    Timed skipping = new Timed(clock, 3);
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> bench.measure("x", bench.shards(c, skipping), c, skipping));
    assertTrue(e.getMessage().contains("elements"), e.getMessage());
  }

  @Test
  void runPrintsTheOneThreadAndTheParallelLinePerRecipe() {
    AtomicLong clock = new AtomicLong();
    List<String> lines = new ArrayList<>();
    var withoutKernel = bench(clock).run(List.of(Recipe.INT8_WEIGHT_ONLY, Recipe.INT8_DYN_ACT_INT4_WEIGHT),
        List.of(new Timed(clock, 0)), 2, lines::add);
    assertEquals(List.of(), List.copyOf(withoutKernel));
    assertEquals(4, lines.size(), lines::toString);
    String number = "[0-9]+(\\.[0-9]+)?";
    assertTrue(Pattern.matches("bench int8-weight-only timed: " + number + " GB/s input, " + number + " of memcpy", lines.get(0)),
        lines.get(0));
    assertTrue(Pattern.matches("bench int8-weight-only timed x2: " + number + " GB/s input, " + number + "x one thread",
        lines.get(1)), lines.get(1));
    assertTrue(lines.get(2).startsWith("bench 8da4w timed: "), lines.get(2));
    assertThrows(IllegalArgumentException.class, () -> bench(clock).run(List.of(Recipe.NF4), List.of(Backends.cpu()), 0, l -> {}));
  }

  @Test
  void parallelSpeedupIsOneThreadsTimeOverTheThreads() {
    Figures one = new Figures("r b", 6_000, 100, 3_000);
    KernelBench.ParallelFigures two = new KernelBench.ParallelFigures(one, 2, 2_000);
    assertEquals(1.5, two.speedup(), 1e-15);
    assertEquals(3.0, two.gigabytesPerSecond(), 1e-15);
    assertEquals("bench r b x2: 3 GB/s input, 1.5x one thread", two.line());
    assertEquals("bench r b: 2 GB/s input, 0.0333 of memcpy", one.line());
  }
}
