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
 * What an executor sends to the assembler of an output file for one shard: either the quantized (or
 * copied) shard as Arrow IPC stream bytes for the assembler to write ({@code written} null), or, where
 * the task wrote the shard's pieces into the file itself ({@link ShardWriter}), only the runs it wrote
 * with their CRC-32Cs ({@code arrowIpc} null); then its verification sums (null for a copied tensor),
 * the time its quantization took and the backend that did it.
 */
public record ShardPayload(int shard, byte[] arrowIpc, QuantStats stats, long nanos, String backend, Crc32c.Runs written) {

  /** A shard carried as IPC bytes, for the assembler to write. */
  public ShardPayload(int shard, byte[] arrowIpc, QuantStats stats, long nanos, String backend) {
    this(shard, arrowIpc, stats, nanos, backend, null);
  }

  public ShardPayload {
    if ((arrowIpc == null) == (written == null)) {
      throw new IllegalArgumentException("shard " + shard + ": a payload carries either its bytes or the runs a task wrote");
    }
  }

  /**
   * Kryo form: fields written out by hand (Kryo 4's field serializer cannot set a record's final fields);
   * the IPC bytes go into Kryo's stream as they are, the written runs as (tensor, offset, length, CRC)
   * each, and the stats as their exact sums ({@link QuantStats#writeTo}), not as a Java-serialized object.
   */
  public static final class KryoSerializer extends Serializer<ShardPayload> {
    @Override
    public void write(Kryo kryo, Output out, ShardPayload p) {
      out.writeInt(p.shard);
      out.writeBoolean(p.arrowIpc != null);
      if (p.arrowIpc != null) {
        out.writeInt(p.arrowIpc.length);
        out.writeBytes(p.arrowIpc);
      } else {
        int[] count = {0};
        p.written.forEach((key, offset, length, crc) -> count[0]++);
        out.writeInt(count[0]);
        p.written.forEach((key, offset, length, crc) -> {
          out.writeString(key);
          out.writeLong(offset);
          out.writeLong(length);
          out.writeInt(crc);
        });
      }
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
      byte[] ipc = null;
      Crc32c.Runs written = null;
      if (in.readBoolean()) {
        ipc = in.readBytes(in.readInt());
      } else {
        written = new Crc32c.Runs();
        for (int n = in.readInt(); n > 0; n--) {
          written.add(in.readString(), in.readLong(), in.readLong(), in.readInt());
        }
      }
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
      return new ShardPayload(shard, ipc, stats, nanos, backend, written);
    }
  }
}
