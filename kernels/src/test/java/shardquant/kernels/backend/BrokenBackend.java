package shardquant.kernels.backend;

import java.nio.ByteBuffer;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;
import shardquant.kernels.backend.simd.SimdBackend;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * The SIMD backend broken on purpose, for {@link Backends#installCpu}: for some recipes and shards it
 * throws the {@code NoSuchMethodError} the Java 17 kernels threw on Java 21 and 25, or flips one byte
 * of what it writes. Everything else is the real SIMD backend's.
 */
public final class BrokenBackend implements Backend {
  /** How it is broken. */
  public enum Fault {
    /** Throws what the Java 17 kernels threw on Java 21+ at their first load from a ByteBuffer. */
    NO_SUCH_METHOD,
    /** Flips the last byte of the first part of the result (the sums stay right: only the bytes are wrong). */
    WRONG_BYTE
  }

  private final Backend real;
  private final Fault fault;
  private final Set<Recipe> recipes;
  private final Predicate<Tensor> shards;

  /** {@code fault} on the shards {@code shards} accepts of {@code recipes}. */
  public BrokenBackend(Backend real, Fault fault, Set<Recipe> recipes, Predicate<Tensor> shards) {
    this.real = real;
    this.fault = fault;
    this.recipes = EnumSet.copyOf(recipes);
    this.shards = shards;
  }

  /** The SIMD backend with {@code fault} on every shard of {@code recipes}. */
  public static BrokenBackend simd(Fault fault, Recipe first, Recipe... more) {
    return new BrokenBackend(new SimdBackend(), fault, EnumSet.of(first, more), t -> true);
  }

  @Override
  public String name() {
    return real.name();
  }

  @Override
  public String nameFor(Recipe recipe) {
    return real.nameFor(recipe);
  }

  @Override
  public QuantizedTensor quantize(Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    boolean broken = recipes.contains(c.recipe()) && shards.test(rows);
    if (broken && fault == Fault.NO_SUCH_METHOD) {
      throw noSuchMethod();
    }
    QuantizedTensor q = real.quantize(rows, c, global, stats);
    return broken ? withWrongByte(q) : q;
  }

  @Override
  public float[] firstPass(QuantConfig c, Tensor rows) {
    if (recipes.contains(c.recipe()) && shards.test(rows) && fault == Fault.NO_SUCH_METHOD) {
      throw noSuchMethod();
    }
    return real.firstPass(c, rows);
  }

  private static NoSuchMethodError noSuchMethod() {
    return new NoSuchMethodError("'jdk.incubator.vector.ShortVector jdk.incubator.vector.ShortVector.fromByteBuffer("
        + "jdk.incubator.vector.VectorSpecies, java.nio.ByteBuffer, int, java.nio.ByteOrder)' (injected by BrokenBackend)");
  }

  private static QuantizedTensor withWrongByte(QuantizedTensor q) {
    Map<String, Tensor> parts = new LinkedHashMap<>(q.parts());
    Map.Entry<String, Tensor> first = parts.entrySet().iterator().next();
    Tensor t = first.getValue();
    ByteBuffer src = t.bytes();
    ByteBuffer copy = ByteBuffer.allocate(src.remaining()).put(src.duplicate()).flip();
    copy.put(copy.limit() - 1, (byte) (copy.get(copy.limit() - 1) ^ 1));
    parts.put(first.getKey(), Tensor.of(t.dtype(), t.shape(), copy));
    return new QuantizedTensor(q.config(), q.shape(), q.originalDType(), parts);
  }
}
