package shardquant.kernels.backend.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.EnumMap;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.Nf4Ref;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * nf4 ({@link Nf4Ref}, which documents the layout): {@code nf4_block_absmax}
 * for the job's first pass, {@code nf4_quantize} (one thread block of 1024 per group of 64 x 256 elements) and
 * {@code nf4_stats} (8 to 128 threads per row) for the second; src/main/cuda/nf4.cu holds the numerics. Shards
 * the kernels do not take (a bad shape, a missing or foreign-dtype mean, NaN or infinite weights) go to
 * the CPU backend, which computes them or refuses them with the reference's message.
 *
 * <p>The first pass keeps its uploaded shard on the device where the job marked it ({@link
 * shardquant.kernels.tensor.Tensor#origin}) and the GPU's {@link ResidentInputs} budget allows; the
 * second pass then uploads nothing but the 128-byte table.
 */
final class CudaNf4 implements CudaRecipe {
  private static final int BLOCK = Nf4Ref.BLOCK_SIZE;
  private static final int SCALER_BLOCK = Nf4Ref.SCALER_BLOCK_SIZE;
  private static final int GROUP = Nf4Ref.SHARD_ALIGNMENT;
  private static final int CODES = 16;
  private static final int THREADS = 256;
  /** nf4_block_absmax: four blocks of 64 per warp. */
  private static final int ABSMAX_BLOCKS_PER_BLOCK = THREADS / 32 * 4;
  /** nf4_quantize: threads per group. */
  private static final int QUANTIZE_THREADS = 1024;
  /** nf4_stats: the table (16 floats), then 8 columns' verification terms (two doubles each) per thread. */
  private static final int STATS_SHARED = 64 + THREADS * 8 * 16;
  /** The kernels' params buffer: the 15 thresholds, then the 16 table values (nf4.cu). */
  private static final int PARAMS = 32;

  private static final Map<DType, float[]> PARAMS_BY_DTYPE = new EnumMap<>(DType.class);

  static {
    for (DType d : new DType[] {DType.F32, DType.BF16, DType.F16}) {
      float[] p = new float[PARAMS];
      System.arraycopy(Nf4Ref.codeThresholds(d), 0, p, 0, CODES - 1);
      System.arraycopy(Nf4Ref.table(d), 0, p, CODES - 1, CODES);
      PARAMS_BY_DTYPE.put(d, p);
    }
  }
  /**
   * The first pass, {@link Nf4Ref#blockAbsmax} of a 2-D floating shard; null when the CPU backend must
   * answer instead (no whole blocks, no elements, or a NaN or infinite weight, which it refuses).
   */
  @Override
  public float[] firstPass(Gpu gpu, Tensor rows, QuantConfig c) {
    long numel = rows.numel();
    if (numel == 0 || numel % BLOCK != 0) {
      return null;
    }
    int k = Math.toIntExact(rows.cols());
    int blocks = Math.toIntExact(numel / BLOCK);
    CudaDevice dev = gpu.device();
    try (CudaShard shard = gpu.shard(rows)) {
      CudaShard.Output absmax = shard.rowOutput(4L * blocks);
      int dtype = CudaKernels.dtype(rows.dtype());
      int rowUnit = BLOCK / gcd(BLOCK, k); // chunks of whole blocks
      shard.uploadAndRun(rowUnit, (s, r0, r1) -> {
        int b0 = Math.toIntExact((long) r0 * k / BLOCK);
        int b1 = Math.toIntExact((long) r1 * k / BLOCK);
        dev.launch(s, "nf4_block_absmax", CudaKernels.blocks(b1 - b0, ABSMAX_BLOCKS_PER_BLOCK), THREADS, 0,
            shard.input(), dtype, b0, b1, absmax);
      });
      float[] out = new float[blocks];
      absmax.bytes().asFloatBuffer().get(out);
      for (float m : out) {
        if (!(m <= Float.MAX_VALUE)) {
          return null;
        }
      }
      gpu.resident().offer(rows, shard); // the second pass takes it where it runs on this GPU
      return out;
    }
  }

  @Override
  public QuantizedTensor quantize(Gpu gpu, Tensor rows, QuantConfig c, GlobalStats global, QuantStats stats) {
    DType d = rows.dtype();
    float mean = global.scalerMean();
    long numel = rows.numel();
    if (numel == 0 || numel % GROUP != 0 || !Float.isFinite(mean) || d.round(mean) != mean) {
      return null; // the CPU backend computes it, or says what is wrong
    }
    int n = Math.toIntExact(rows.rows());
    int k = Math.toIntExact(rows.cols());
    int groups = Math.toIntExact(numel / GROUP);
    int blocks = Math.toIntExact(numel / BLOCK);
    CudaDevice dev = gpu.device();
    Map<String, PartSpec> declared = CudaRecipe.declared(c, rows);
    try (CudaShard shard = gpu.shard(rows)) {
      CudaDevice.Memory params = shard.alloc(4L * PARAMS);
      shard.upload(floats(PARAMS_BY_DTYPE.get(d)), params);
      // Every output but scalerDq (device-only) is a row output: chunks hold whole groups.
      CudaShard.Output data = CudaRecipe.rowOutput(shard, declared, "quantized_data");
      CudaShard.Output qscalers = CudaRecipe.rowOutput(shard, declared, "quantized_scalers");
      CudaShard.Output factors = CudaRecipe.rowOutput(shard, declared, "quantization_factor");
      CudaDevice.Memory scalerDq = shard.alloc(4L * blocks);
      CudaShard.Output bad = shard.rowOutput(4L * groups);
      CudaShard.Output rowStats = shard.rowOutput((long) CudaRowStats.BYTES * n);
      int dtype = CudaKernels.dtype(d);
      int rowUnit = GROUP / gcd(GROUP, k); // chunks of whole groups (Nf4Recipe.rowAlignment)
      // nf4_stats: rowThreads threads per row (8 columns each per slice, 8 to 128), THREADS / rowThreads rows per block
      int rowThreads = Math.max(8, Math.min(128, Integer.highestOneBit(Math.max(1, (k + 7) / 8 - 1)) << 1));
      int statsRows = THREADS / rowThreads;
      shard.uploadAndRun(rowUnit, (s, r0, r1) -> {
        int g0 = Math.toIntExact((long) r0 * k / GROUP);
        int g1 = Math.toIntExact((long) r1 * k / GROUP);
        // a chunk holds whole groups, at least one
        dev.launch(s, "nf4_quantize", g1 - g0, QUANTIZE_THREADS, 0,
            shard.input(), dtype, g0, mean, params, data, qscalers, factors, scalerDq, bad);
        dev.launch(s, "nf4_stats", CudaKernels.blocks(r1 - r0, statsRows), THREADS, STATS_SHARED,
            shard.input(), dtype, k, r0, r1, rowThreads, params, data, scalerDq, rowStats);
      });
      ByteBuffer badCounts = bad.bytes();
      for (int g = 0; g < groups; g++) {
        if (badCounts.getInt(4 * g) != 0) {
          return null; // NaN or infinite weights: the CPU backend refuses them, naming the element
        }
      }
      CudaRowStats sums = shard.stats(rowStats);
      sums.addTo(stats, k);
      QuantizedTensor out = CudaRecipe.download(shard, c, rows, declared,
          Map.of("quantized_data", data, "quantized_scalers", qscalers, "quantization_factor", factors));
      Nf4Ref.writeReplicated(out, mean);
      return out;
    }
  }

  /** {@code values} as little-endian bytes. */
  private static ByteBuffer floats(float[] values) {
    ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    return b;
  }

  private static int gcd(int a, int b) {
    return b == 0 ? a : gcd(b, a % b);
  }
}
