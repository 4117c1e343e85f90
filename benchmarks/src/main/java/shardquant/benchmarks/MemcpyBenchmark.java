package shardquant.benchmarks;

import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/** The baseline for {@link QuantizeBenchmark}: copying the same shard's bytes, direct to direct buffer, in MiB/s. */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@OperationsPerInvocation(QuantizeBenchmark.MIB)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = "--add-modules=jdk.incubator.vector")
public class MemcpyBenchmark {
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
