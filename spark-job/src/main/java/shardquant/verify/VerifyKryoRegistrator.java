package shardquant.verify;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.serializers.JavaSerializer;
import org.apache.spark.SparkConf;
import org.apache.spark.serializer.KryoRegistrator;

/**
 * The task results verify moves through Spark's serializer, registered after the job's own
 * ({@code spark.kryo.registrator} takes a list): small, once per shard or file, so Java serialization
 * carries their records and exact sums.
 */
public final class VerifyKryoRegistrator implements KryoRegistrator {
  @Override
  public void registerClasses(Kryo kryo) {
    kryo.register(ShardChecker.ShardCheck.class, new JavaSerializer());
    kryo.register(ShardChecker.ShardCheck[].class);
    kryo.register(ShardChecker.FileCheck.class, new JavaSerializer());
    kryo.register(ShardChecker.FileCheck[].class);
  }

  /** {@code conf} with this registrator after those it names. */
  static SparkConf addTo(SparkConf conf) {
    String before = conf.get("spark.kryo.registrator", "");
    return conf.set("spark.kryo.registrator", (before.isEmpty() ? "" : before + ",") + VerifyKryoRegistrator.class.getName());
  }
}
