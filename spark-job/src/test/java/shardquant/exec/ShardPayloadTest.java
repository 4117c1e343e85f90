package shardquant.exec;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import org.junit.jupiter.api.Test;
import shardquant.kernels.verify.QuantStats;

/** A payload's stats cross Kryo exactly: sums of wide range, counts, and a NaN max error bit for bit. */
class ShardPayloadTest {
  @Test
  void statsRoundTripExactly() {
    QuantStats stats = new QuantStats();
    stats.addSums(3, 1, 1e300, 1e-300, 0.25f);
    stats.addSums(5, 0, 4.9e-324, 123.456, Float.NaN);
    stats.addNonFinite(2);
    ShardPayload p = new ShardPayload(9, new byte[] {5, 6, 7}, stats, 42, "cpu-simd");
    Kryo kryo = new Kryo();
    Output out = new Output(16, -1);
    new ShardPayload.KryoSerializer().write(kryo, out, p);
    out.writeInt(0xC0FFEE); // what follows in the stream is left for the next reader
    Input in = new Input(out.toBytes());
    ShardPayload back = new ShardPayload.KryoSerializer().read(kryo, in, ShardPayload.class);
    assertEquals(0xC0FFEE, in.readInt());
    assertEquals(9, back.shard());
    assertArrayEquals(p.arrowIpc(), back.arrowIpc());
    assertEquals(stats, back.stats());
    assertEquals(stats.sqnrDb(), back.stats().sqnrDb());
    assertEquals(Float.floatToRawIntBits(stats.maxAbsError()), Float.floatToRawIntBits(back.stats().maxAbsError()));
    assertEquals(stats.nonFinite(), back.stats().nonFinite());
    assertEquals(stats.clippedFraction(), back.stats().clippedFraction());
    assertEquals(42, back.nanos());
    assertEquals("cpu-simd", back.backend());
  }

  /** The runs a task wrote cross Kryo whole: every tensor's runs, offsets and CRCs, so the assembler's CRC is the same. */
  @Test
  void writtenRunsRoundTrip() {
    Crc32c.Runs runs = new Crc32c.Runs();
    runs.add("a._weight_qdata", 0, 100, 0x12345678);
    runs.add("a._weight_qdata", 100, 28, 0xCAFEBABE);
    runs.add("a._weight_scale", 0, 1L << 33, -1);
    ShardPayload p = new ShardPayload(3, null, null, 7, "repack", runs);
    Kryo kryo = new Kryo();
    Output out = new Output(16, -1);
    new ShardPayload.KryoSerializer().write(kryo, out, p);
    out.writeInt(0xC0FFEE);
    Input in = new Input(out.toBytes());
    ShardPayload back = new ShardPayload.KryoSerializer().read(kryo, in, ShardPayload.class);
    assertEquals(0xC0FFEE, in.readInt());
    assertEquals(null, back.arrowIpc());
    assertEquals(null, back.stats());
    assertEquals(runs.crc("a._weight_qdata", 128), back.written().crc("a._weight_qdata", 128));
    assertEquals(runs.crc("a._weight_scale", 1L << 33), back.written().crc("a._weight_scale", 1L << 33));
    assertEquals(1L << 33, back.written().bytes("a._weight_scale"));
    assertEquals(7, back.nanos());
    assertEquals("repack", back.backend());
  }
}
