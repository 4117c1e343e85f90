package shardquant.exec;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.KryoException;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import shardquant.kernels.verify.QuantStats;

/**
 * What an executor sends to the assembler of an output file for one shard: the quantized (or copied)
 * shard as Arrow IPC stream bytes, its verification sums (null for a copied tensor), the time its
 * quantization took and the backend that did it.
 */
public record ShardPayload(int shard, byte[] arrowIpc, QuantStats stats, long nanos, String backend) {

  /**
   * Kryo form: fields written out by hand (Kryo 4's field serializer cannot set a record's final fields);
   * the IPC bytes go into Kryo's stream as they are, and the stats as their exact sums
   * ({@link QuantStats#writeTo}), not as a Java-serialized object.
   */
  public static final class KryoSerializer extends Serializer<ShardPayload> {
    @Override
    public void write(Kryo kryo, Output out, ShardPayload p) {
      out.writeInt(p.shard);
      out.writeInt(p.arrowIpc.length);
      out.writeBytes(p.arrowIpc);
      out.writeLong(p.nanos);
      out.writeString(p.backend);
      out.writeBoolean(p.stats != null);
      if (p.stats != null) {
        try {
          p.stats.writeTo(new DataOutputStream(out)); // unbuffered: every byte goes straight into out
        } catch (IOException e) {
          throw new KryoException(e);
        }
      }
    }

    @Override
    public ShardPayload read(Kryo kryo, Input in, Class<ShardPayload> type) {
      int shard = in.readInt();
      byte[] ipc = in.readBytes(in.readInt());
      long nanos = in.readLong();
      String backend = in.readString();
      QuantStats stats = null;
      if (in.readBoolean()) {
        try {
          stats = QuantStats.readFrom(new DataInputStream(in)); // reads exactly its own bytes
        } catch (IOException e) {
          throw new KryoException(e);
        }
      }
      return new ShardPayload(shard, ipc, stats, nanos, backend);
    }
  }
}
