package shardquant.exec;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * CRC-32C (Castagnoli, as {@link CRC32C} computes it) of byte strings that arrive as pieces in any
 * order: each piece's CRC is taken while it is written, and {@link #combine} joins the CRCs of two
 * adjacent pieces into the CRC of both without their bytes. The math is zlib's {@code crc32_combine}
 * (zlib 1.2.12, crc32.c: {@code multmodp}, {@code x2nmodp}) with the Castagnoli polynomial; the
 * pre- and post-inversion of the standard CRC cancel in the combination, as they do in zlib.
 */
public final class Crc32c {
  /** The Castagnoli polynomial, bit-reflected (x^0 in the top bit), as CRC32C uses it. */
  private static final int POLY = 0x82F63B78;
  /** x^(2^k) mod POLY for k = 0..31, reflected. */
  private static final int[] X2N = new int[32];

  static {
    int p = 1 << 30; // x^1
    X2N[0] = p;
    for (int k = 1; k < 32; k++) {
      X2N[k] = p = multModP(p, p);
    }
  }

  private Crc32c() {}

  /** CRC-32C of the remaining bytes of {@code b}; its position is left unchanged. */
  public static int of(ByteBuffer b) {
    CRC32C crc = new CRC32C();
    crc.update(b.duplicate());
    return (int) crc.getValue();
  }

  /** CRC-32C of A followed by B, from {@code crcA}, {@code crcB} and B's length in bytes. */
  public static int combine(int crcA, int crcB, long lengthB) {
    if (lengthB < 0) {
      throw new IllegalArgumentException("a piece's length must be at least 0, got " + lengthB);
    }
    return multModP(x2nModP(lengthB, 3), crcA) ^ crcB;
  }

  /** a * b modulo POLY, both reflected. */
  private static int multModP(int a, int b) {
    int m = 1 << 31;
    int p = 0;
    while (true) {
      if ((a & m) != 0) {
        p ^= b;
        if ((a & (m - 1)) == 0) {
          return p;
        }
      }
      m >>>= 1;
      b = (b & 1) != 0 ? (b >>> 1) ^ POLY : b >>> 1;
    }
  }

  /** x^(n * 2^k) modulo POLY; k = 3 gives x^(8n), the shift of n bytes. */
  private static int x2nModP(long n, int k) {
    int p = 1 << 31; // x^0
    while (n != 0) {
      if ((n & 1) != 0) {
        p = multModP(X2N[k & 31], p);
      }
      n >>>= 1;
      k++;
    }
    return p;
  }

  /**
   * The CRC-32C of each of a file's stored tensors, from the runs of their bytes as the assembler
   * writes them (a shard's piece of a part is one run, or several for a part that grows along a later
   * dimension; runs come in any order). {@link #crc} sorts a tensor's runs and combines them.
   */
  public static final class Runs {
    private record Run(long offset, long length, int crc) {}

    private final Map<String, List<Run>> runs = new HashMap<>();

    /** {@code length} bytes at {@code offset} into tensor {@code key} have CRC-32C {@code crc}. */
    public void add(String key, long offset, long length, int crc) {
      if (length == 0) {
        return; // no bytes: nothing to combine, and nothing to tile
      }
      runs.computeIfAbsent(key, k -> new ArrayList<>()).add(new Run(offset, length, crc));
    }

    /** Each run added, tensor by tensor (the order runs came in within a tensor). */
    public void forEach(Visitor v) {
      runs.forEach((key, rs) -> rs.forEach(r -> v.run(key, r.offset, r.length, r.crc)));
    }

    /** The runs of {@code other} added to these. */
    public void addAll(Runs other) {
      other.forEach(this::add);
    }

    /** Bytes of tensor {@code key} its runs cover. */
    public long bytes(String key) {
      return runs.getOrDefault(key, List.of()).stream().mapToLong(Run::length).sum();
    }

    /** What {@link #forEach} gives: {@code length} bytes at {@code offset} into tensor {@code key}, with CRC-32C {@code crc}. */
    @FunctionalInterface
    public interface Visitor {
      void run(String key, long offset, long length, int crc);
    }

    /**
     * The CRC-32C of tensor {@code key}'s {@code byteSize} bytes; its runs must tile them exactly (a gap
     * or an overlap means a shard went missing or came twice).
     */
    public int crc(String key, long byteSize) {
      List<Run> rs = runs.getOrDefault(key, new ArrayList<>());
      rs.sort((a, b) -> Long.compare(a.offset, b.offset));
      int crc = 0; // CRC-32C of no bytes
      long at = 0;
      for (Run r : rs) {
        if (r.offset != at) {
          throw new IllegalStateException(key + ": bytes [" + Math.min(at, r.offset) + ", " + Math.max(at, r.offset) + ") "
              + (r.offset > at ? "were never written" : "were written twice") + " (a shard is missing or duplicated)");
        }
        crc = combine(crc, r.crc, r.length);
        at += r.length;
      }
      if (at != byteSize) {
        throw new IllegalStateException(key + ": got " + at + " of " + byteSize + " bytes (a shard is missing)");
      }
      return crc;
    }
  }
}
