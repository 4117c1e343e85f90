package shardquant.job;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.serializers.JavaSerializer;
import org.apache.spark.serializer.KryoRegistrator;
import shardquant.exec.FileResult;
import shardquant.exec.ShardPayload;
import shardquant.kernels.verify.QuantStats;

/**
 * Every class shardquant moves through Spark's serializer (shuffle records, task results, parallelized
 * task inputs). With {@code spark.kryo.registrationRequired=true} an unlisted class fails the job
 * loudly instead of silently costing a class name per record.
 */
public final class ShardquantKryoRegistrator implements KryoRegistrator {
  @Override
  public void registerClasses(Kryo kryo) {
    kryo.register(int[].class);
    kryo.register(float[].class);
    kryo.register(byte[].class);
    kryo.register(Object[].class);
    kryo.register(scala.Tuple2.class);
    kryo.register(scala.Tuple2[].class);
    kryo.register(ShardPayload.class, new ShardPayload.KryoSerializer());
    // Small, once per file or shard: Java serialization handles records and BigDecimal sums exactly.
    kryo.register(FileResult.class, new JavaSerializer());
    kryo.register(FileResult[].class);
    kryo.register(QuantStats.class, new JavaSerializer());
  }
}
