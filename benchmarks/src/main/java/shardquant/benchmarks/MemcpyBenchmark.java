package shardquant.benchmarks;

import java.nio.ByteBuffer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/** The baseline for {@link QuantizeBenchmark}: copying the same shard's bytes, direct to direct buffer, in MiB/s. */
@State(Scope.Benchmark)
public class MemcpyBenchmark extends MibPerSecond {
  private ByteBuffer source;
  private ByteBuffer target;

  @Setup
  public void setUp() {
    source = QuantizeBenchmark.shard().bytes();
    target = ByteBuffer.allocateDirect(source.capacity());
  }

  @Benchmark
  public ByteBuffer memcpy() {
    target.clear();
    return target.put(source.duplicate());
  }
}
