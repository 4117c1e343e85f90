package shardquant.job;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NoRouteToHostException;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.spark.SparkConf;
import shardquant.common.UserError;

/**
 * Before the driver starts Spark against a standalone master ({@code spark://HOST:PORT}, or several
 * {@code HOST:PORT} separated by commas for standby masters): a plain TCP connect to each, all at once,
 * for at most {@code spark.shardquant.masterConnectTimeout} (10 s by default). Spark's own client would
 * try to register three times, 20 s apart, and then leave a stopped context that fails the job with an
 * internal error a minute later; a master that cannot be reached is the user's error, said in one
 * line. Other masters (local, yarn, k8s) are not probed.
 */
public final class MasterCheck {
  /** How long the probe may take in all (name resolution included), as a Spark time string. */
  public static final String TIMEOUT_CONF = "spark.shardquant.masterConnectTimeout";
  static final String DEFAULT_TIMEOUT = "10s";
  private static final String PREFIX = "spark://";

  private MasterCheck() {}

  /** Throws {@link UserError} when {@code conf}'s master is a standalone master none of whose addresses answer. */
  public static void check(SparkConf conf) {
    String master = conf.get("spark.master", "");
    if (!master.startsWith(PREFIX)) {
      return;
    }
    long timeoutMs;
    try {
      timeoutMs = conf.getTimeAsMs(TIMEOUT_CONF, DEFAULT_TIMEOUT);
    } catch (RuntimeException e) {
      throw new UserError(TIMEOUT_CONF + "=" + conf.get(TIMEOUT_CONF) + ": not a time (e.g. 10s, 2min)");
    }
    probe(master, Math.max(1, timeoutMs));
  }

  /** The host:port pairs of a {@code spark://} URL, as Spark reads them; a malformed URL is the user's error. */
  static List<InetSocketAddress> addresses(String url) {
    List<InetSocketAddress> out = new ArrayList<>();
    for (String hostPort : url.substring(PREFIX.length()).split(",", -1)) {
      URI uri;
      try {
        uri = new URI(PREFIX + hostPort.trim());
      } catch (java.net.URISyntaxException e) {
        uri = null;
      }
      if (uri == null || uri.getHost() == null || uri.getPort() < 0 || (uri.getPath() != null && !uri.getPath().isEmpty())
          || uri.getQuery() != null || uri.getUserInfo() != null) {
        throw new UserError("--master " + url + ": not a Spark master URL (spark://HOST:PORT, or spark://HOST1:PORT1,HOST2:PORT2"
            + " for standby masters)");
      }
      String host = uri.getHost().startsWith("[") ? uri.getHost().substring(1, uri.getHost().length() - 1) : uri.getHost();
      out.add(InetSocketAddress.createUnresolved(host, uri.getPort()));
    }
    return out;
  }

  private record Attempt(InetSocketAddress address, String failure) {}

  static void probe(String url, long timeoutMs) {
    List<InetSocketAddress> addresses = addresses(url);
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    BlockingQueue<Attempt> results = new LinkedBlockingQueue<>();
    Map<InetSocketAddress, String> failures = new LinkedHashMap<>();
    for (InetSocketAddress a : addresses) {
      failures.put(a, "no answer within " + seconds(timeoutMs));
      // Daemon threads: name resolution cannot be interrupted, so a slow one is left behind, not waited for.
      Thread t = new Thread(() -> results.add(new Attempt(a, connect(a, deadline, timeoutMs))), "shardquant-master-probe");
      t.setDaemon(true);
      t.start();
    }
    try {
      for (int i = 0; i < addresses.size(); i++) {
        long left = deadline - System.nanoTime();
        Attempt r = left > 0 ? results.poll(left, TimeUnit.NANOSECONDS) : null;
        if (r == null) {
          break;
        }
        if (r.failure() == null) {
          return;
        }
        failures.put(r.address(), r.failure());
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while probing the Spark master " + url, e);
    }
    String why = failures.size() == 1 ? failures.values().iterator().next()
        : String.join("; ", failures.entrySet().stream().map(f -> hostPort(f.getKey()) + ": " + f.getValue()).toList());
    throw new UserError("cannot reach the Spark master " + url + " (" + why + "); check --master (spark://HOST:PORT, "
        + "the master's port, 7077 by default, not its web UI's) and that the master is running");
  }

  /** Null when {@code a} accepts a TCP connection before the deadline, else what went wrong, in a few words. */
  private static String connect(InetSocketAddress a, long deadline, long timeoutMs) {
    InetAddress ip;
    try {
      ip = InetAddress.getByName(a.getHostString());
    } catch (UnknownHostException e) {
      return "unknown host " + a.getHostString();
    }
    long leftMs = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
    if (leftMs <= 0) {
      return "no answer within " + seconds(timeoutMs);
    }
    try (Socket s = new Socket()) {
      s.connect(new InetSocketAddress(ip, a.getPort()), (int) Math.min(Integer.MAX_VALUE, leftMs));
      return null;
    } catch (SocketTimeoutException e) {
      return "no answer within " + seconds(timeoutMs);
    } catch (NoRouteToHostException e) {
      return "no route to host " + a.getHostString();
    } catch (ConnectException e) {
      String m = String.valueOf(e.getMessage());
      return m.toLowerCase(java.util.Locale.ROOT).contains("refused") ? "connection refused" : m;
    } catch (IOException e) {
      return String.valueOf(e.getMessage());
    }
  }

  private static String hostPort(InetSocketAddress a) {
    return (a.getHostString().contains(":") ? "[" + a.getHostString() + "]" : a.getHostString()) + ":" + a.getPort();
  }

  static String seconds(long ms) {
    return ms < 1000 ? ms + " ms" : ms % 1000 == 0 ? ms / 1000 + " s" : String.format(java.util.Locale.ROOT, "%.1f s", ms / 1000.0);
  }
}
