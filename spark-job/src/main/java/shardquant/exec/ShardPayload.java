package shardquant.exec;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.UncheckedIOException;
import shardquant.kernels.verify.QuantStats;

/**
 * What an executor sends to the assembler of an output file for one shard: the quantized (or copied)
 * shard as Arrow IPC stream bytes, its verification sums (null for a copied tensor), the time its
 * quantization took and the backend that did it.
 */
public record ShardPayload(int shard, byte[] arrowIpc, QuantStats stats, long nanos, String backend) {

  /** Kryo form: fields written out by hand (Kryo 4's field serializer cannot set a record's final fields). */
  public static final class KryoSerializer extends Serializer<ShardPayload> {
    @Override
    public void write(Kryo kryo, Output out, ShardPayload p) {
      out.writeInt(p.shard);
      out.writeInt(p.arrowIpc.length);
      out.writeBytes(p.arrowIpc);
      out.writeLong(p.nanos);
      out.writeString(p.backend);
      byte[] stats = p.stats == null ? new byte[0] : javaBytes(p.stats);
      out.writeInt(stats.length);
      out.writeBytes(stats);
    }

    @Override
    public ShardPayload read(Kryo kryo, Input in, Class<ShardPayload> type) {
      int shard = in.readInt();
      byte[] ipc = in.readBytes(in.readInt());
      long nanos = in.readLong();
      String backend = in.readString();
      byte[] stats = in.readBytes(in.readInt());
      return new ShardPayload(shard, ipc, stats.length == 0 ? null : (QuantStats) fromJavaBytes(stats), nanos, backend);
    }
  }

  static byte[] javaBytes(Object o) {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    try (ObjectOutputStream out = new ObjectOutputStream(b)) {
      out.writeObject(o);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return b.toByteArray();
  }

  static Object fromJavaBytes(byte[] bytes) {
    try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes))) {
      return in.readObject();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (ClassNotFoundException e) {
      throw new IllegalStateException(e);
    }
  }
}
