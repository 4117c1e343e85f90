package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.Serializable;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.serializer.KryoSerializer;
import org.apache.spark.serializer.SerializerInstance;
import org.junit.jupiter.api.Test;
import scala.reflect.ClassTag$;
import shardquant.common.TensorReport;
import shardquant.exec.FileResult;
import shardquant.exec.ShardPayload;
import shardquant.kernels.verify.QuantStats;

/** The job's Kryo setup: what it moves round-trips, and anything unregistered fails loudly. */
class KryoRegistrationTest {
  private static SparkConf conf() {
    return QuantizeJob.sparkConf(new JobOptions("in", "out", null, "local[1]", "auto", null,
        Map.of("spark.driver.host", "127.0.0.1", "spark.driver.bindAddress", "127.0.0.1")));
  }

  @Test
  void jobConfRequiresRegistration() {
    SparkConf c = conf();
    assertEquals(KryoSerializer.class.getName(), c.get("spark.serializer"));
    assertEquals("true", c.get("spark.kryo.registrationRequired"));
    assertEquals(ShardquantKryoRegistrator.class.getName(), c.get("spark.kryo.registrator"));
  }

  @Test
  void payloadsAndResultsRoundTrip() {
    SerializerInstance kryo = new KryoSerializer(conf()).newInstance();
    QuantStats stats = new QuantStats();
    stats.addBlock(new float[] {1, 2, 3}, new float[] {1, 2.5f, 3}, 0, 3, 1);
    ShardPayload p = new ShardPayload(7, new byte[] {1, 2, 3, 4}, stats, 123, "reference");
    ShardPayload back = roundTrip(kryo, p, ShardPayload.class);
    assertEquals(7, back.shard());
    assertArrayEquals(p.arrowIpc(), back.arrowIpc());
    assertEquals(stats, back.stats());
    assertEquals(123, back.nanos());
    assertEquals("reference", back.backend());
    assertEquals(null, roundTrip(kryo, new ShardPayload(1, new byte[0], null, 0, "reference"), ShardPayload.class).stats());
    FileResult r = new FileResult(2, "model-00003-of-00004.safetensors", 99,
        List.of(TensorReport.of("a.weight", stats, "reference", 5)), 77);
    assertEquals(r, roundTrip(kryo, r, FileResult.class));
  }

  /** A record nobody registered: Spark must refuse it rather than quietly write its class name per record. */
  record Unregistered(int x) implements Serializable {}

  @Test
  void unregisteredClassFailsTheJobLoudly() {
    try (JavaSparkContext sc = new JavaSparkContext(conf())) {
      Exception e = assertThrows(Exception.class,
          () -> sc.parallelize(List.of(1, 2), 2).map(Unregistered::new).collect());
      String all = e.toString() + (e.getCause() == null ? "" : e.getCause().toString());
      assertTrue(all.contains("Class is not registered") && all.contains(Unregistered.class.getName()), all);
    }
  }

  private static <T> T roundTrip(SerializerInstance kryo, T value, Class<T> type) {
    ByteBuffer bytes = kryo.serialize(value, ClassTag$.MODULE$.apply(type));
    return kryo.deserialize(bytes, ClassTag$.MODULE$.apply(type));
  }
}
