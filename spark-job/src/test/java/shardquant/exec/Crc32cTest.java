package shardquant.exec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;

/** The combined CRC of pieces, in any order, is {@link CRC32C}'s of the whole. */
class Crc32cTest {
  private static int whole(byte[] b) {
    CRC32C crc = new CRC32C();
    crc.update(b);
    return (int) crc.getValue();
  }

  private static int of(byte[] b, int from, int to) {
    return Crc32c.of(ByteBuffer.wrap(b, from, to - from));
  }

  @Test
  void combiningTwoPiecesGivesTheWholesCrc() {
    Random r = new Random(1);
    for (int n : new int[] {0, 1, 2, 3, 7, 8, 9, 63, 64, 65, 1000, 4099, 1 << 16}) {
      byte[] b = new byte[n];
      r.nextBytes(b);
      for (int cut : new int[] {0, n / 3, n / 2, n}) {
        assertEquals(whole(b), Crc32c.combine(of(b, 0, cut), of(b, cut, n), n - cut), n + " bytes cut at " + cut);
      }
    }
  }

  @Test
  void runsInAnyOrderGiveTheWholesCrc() {
    Random r = new Random(2);
    for (int trial = 0; trial < 200; trial++) {
      byte[] b = new byte[r.nextInt(20_000)];
      r.nextBytes(b);
      List<int[]> pieces = new ArrayList<>();
      for (int at = 0; at < b.length; ) {
        int len = Math.min(b.length - at, r.nextInt(3) == 0 ? 0 : 1 + r.nextInt(3000));
        pieces.add(new int[] {at, at + len});
        at += len;
      }
      Collections.shuffle(pieces, r);
      Crc32c.Runs runs = new Crc32c.Runs();
      for (int[] p : pieces) {
        runs.add("t", p[0], p[1] - p[0], of(b, p[0], p[1]));
      }
      assertEquals(whole(b), runs.crc("t", b.length), "trial " + trial + ", " + pieces.size() + " pieces of " + b.length);
    }
  }

  @Test
  void anEmptyTensorHasTheEmptyCrc() {
    assertEquals(whole(new byte[0]), new Crc32c.Runs().crc("empty", 0));
  }

  @Test
  void aMissingOrRepeatedRunIsRefused() {
    Crc32c.Runs gap = new Crc32c.Runs();
    gap.add("t", 0, 10, 0);
    gap.add("t", 20, 10, 0);
    assertThrows(IllegalStateException.class, () -> gap.crc("t", 30));
    Crc32c.Runs twice = new Crc32c.Runs();
    twice.add("t", 0, 10, 0);
    twice.add("t", 0, 10, 0);
    assertThrows(IllegalStateException.class, () -> twice.crc("t", 20));
    Crc32c.Runs shortOne = new Crc32c.Runs();
    shortOne.add("t", 0, 10, 0);
    assertThrows(IllegalStateException.class, () -> shortOne.crc("t", 11));
  }
}
