package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.ChildJvm;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.common.UserError;

/**
 * A {@code --master spark://...} that cannot be reached is the user's error: exit 2 with one line naming
 * the URL and what to check, in seconds, before any work (Spark's own client would retry for a minute
 * and then fail the job with an internal error).
 */
class MasterCheckTest {
  /** Generous: the probe gives up after 10 s; Spark's client took 63 s. */
  private static final long BOUND_MS = 30_000;

  @TempDir
  Path tmp;

  private Run quantizeWith(String master) {
    Path input = JobTestSupport.golden("torchao-0.19-formats").resolve("input.safetensors");
    return JobTestSupport.cli("quantize", "--input", input.toString(), "--output", tmp.resolve("out").toString(),
        "--recipe", "int8-weight-only", "--master", master, "--conf", "spark.driver.host=127.0.0.1", "--conf",
        "spark.driver.bindAddress=127.0.0.1", "--conf", "spark.ui.enabled=false");
  }

  private void assertRefused(String master, String why) {
    long start = System.nanoTime();
    Run r = quantizeWith(master);
    long ms = (System.nanoTime() - start) / 1_000_000;
    assertEquals(2, r.status(), r::toString);
    List<String> lines = r.err().lines().toList();
    assertEquals(1, lines.size(), r::toString);
    assertTrue(lines.get(0).startsWith("shardquant quantize: cannot reach the Spark master " + master + " (" + why + ")"),
        r::toString);
    assertTrue(lines.get(0).contains("check --master"), r::toString);
    assertTrue(ms < BOUND_MS, () -> "took " + ms + " ms\n" + r);
    assertEquals("", r.out(), r::toString);
  }

  @Test
  void aClosedPortIsRefusedInSecondsWithOneLine() throws Exception {
    int port = ChildJvm.freePorts(1)[0]; // closed again: nothing listens there
    assertRefused("spark://127.0.0.1:" + port, "connection refused");
  }

  @Test
  void anUnresolvableHostIsRefusedInSecondsWithOneLine() {
    assertRefused("spark://no-such-host.invalid:7077", "unknown host no-such-host.invalid");
  }

  @Test
  void standbyMastersAreRefusedOnlyWhenNoneAnswers() throws Exception {
    int port = ChildJvm.freePorts(1)[0];
    String both = "spark://127.0.0.1:" + port + ",no-such-host.invalid:7077";
    assertRefused(both, "127.0.0.1:" + port + ": connection refused; no-such-host.invalid:7077: unknown host no-such-host.invalid");
    try (ServerSocket listening = new ServerSocket(0, 50, InetAddress.getLoopbackAddress())) {
      MasterCheck.probe("spark://no-such-host.invalid:7077,127.0.0.1:" + listening.getLocalPort(), 10_000);
    }
  }

  @Test
  void aMalformedUrlIsTheUsersError() {
    Run r = quantizeWith("spark://host-without-port");
    assertEquals(2, r.status(), r::toString);
    assertEquals(List.of("shardquant quantize: --master spark://host-without-port: not a Spark master URL (spark://HOST:PORT, "
        + "or spark://HOST1:PORT1,HOST2:PORT2 for standby masters)"), r.err().lines().toList());
  }

  @Test
  void aMasterThatDoesNotAnswerIsGivenUpAfterTheTimeout() throws Exception {
    // A listener whose accept queue is full: the kernel drops further connection attempts unanswered.
    try (ServerSocket full = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      List<Socket> queued = new ArrayList<>();
      try {
        for (int i = 0; i < 4; i++) {
          Socket s = new Socket();
          try {
            s.connect(full.getLocalSocketAddress(), 300);
            queued.add(s);
          } catch (java.net.SocketTimeoutException e) {
            s.close();
            break; // the queue is full now
          }
        }
        String url = "spark://127.0.0.1:" + full.getLocalPort();
        SparkConf conf = new SparkConf(false).setMaster(url).set(MasterCheck.TIMEOUT_CONF, "1500ms");
        long start = System.nanoTime();
        UserError e = assertThrows(UserError.class, () -> MasterCheck.check(conf));
        long ms = (System.nanoTime() - start) / 1_000_000;
        assertTrue(e.getMessage().contains(url + " (no answer within 1.5 s)"), e::getMessage);
        assertTrue(ms >= 1_000 && ms < 5_000, () -> "took " + ms + " ms");
      } finally {
        for (Socket s : queued) {
          s.close();
        }
      }
    }
  }

  @Test
  void localMastersAreNeverProbed() {
    for (String master : List.of("local", "local[2]", "local[*,4]", "yarn")) {
      MasterCheck.check(new SparkConf(false).setMaster(master).set(MasterCheck.TIMEOUT_CONF, "1ms"));
    }
  }
}
