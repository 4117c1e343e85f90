package shardquant;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A JVM started by a test (a Spark daemon, spark-submit, the CLI) with the project's JVM flags. Its
 * stdout and stderr go to files, never to pipes that could fill up and stall it; {@link #close()}
 * kills it and everything it started (a Worker's executors).
 */
public final class ChildJvm implements AutoCloseable {
  private final String name;
  private final Process process;
  private final Path out;
  private final Path err;

  private ChildJvm(String name, Process process, Path out, Path err) {
    this.name = name;
    this.process = process;
    this.out = out;
    this.err = err;
  }

  /**
   * Starts {@code java <project flags> <jvmArgs> -cp <classpath> <mainClass> <args>} with {@code env}
   * added to this JVM's environment (a null value removes the variable); output goes to
   * {@code logDir/<name>.out} and {@code .err}.
   */
  public static ChildJvm start(String name, Path logDir, String classpath, Map<String, String> env, List<String> jvmArgs,
      String mainClass, List<String> args) throws IOException {
    return startWithFlags(jvmFlags(), name, logDir, classpath, env, jvmArgs, mainClass, args);
  }

  /** As {@link #start}, with {@code flags} in place of the project's JVM flags. */
  public static ChildJvm startWithFlags(List<String> flags, String name, Path logDir, String classpath,
      Map<String, String> env, List<String> jvmArgs, String mainClass, List<String> args) throws IOException {
    return startOn(thisJava(), flags, name, logDir, classpath, env, jvmArgs, mainClass, args);
  }

  /** As {@link #startWithFlags}, on the Java {@code java} (a {@code bin/java}) instead of this JVM's. */
  public static ChildJvm startOn(Path java, List<String> flags, String name, Path logDir, String classpath,
      Map<String, String> env, List<String> jvmArgs, String mainClass, List<String> args) throws IOException {
    Files.createDirectories(logDir);
    List<String> command = new ArrayList<>();
    command.add(java.toString());
    command.addAll(flags);
    command.addAll(jvmArgs);
    command.addAll(List.of("-cp", classpath, mainClass));
    command.addAll(args);
    ProcessBuilder pb = new ProcessBuilder(command);
    env.forEach((k, v) -> {
      if (v == null) {
        pb.environment().remove(k);
      } else {
        pb.environment().put(k, v);
      }
    });
    Path out = logDir.resolve(name + ".out");
    Path err = logDir.resolve(name + ".err");
    pb.redirectOutput(out.toFile()).redirectError(err.toFile()).redirectInput(ProcessBuilder.Redirect.from(nullFile()));
    return new ChildJvm(name, pb.start(), out, err);
  }

  private static java.io.File nullFile() {
    return new java.io.File(System.getProperty("os.name").startsWith("Windows") ? "NUL" : "/dev/null");
  }

  /** This JVM's {@code bin/java}. */
  public static Path thisJava() {
    return Path.of(System.getProperty("java.home"), "bin", "java");
  }

  /**
   * The project's JVM flags for this JVM's Java: Surefire passes them as the system property
   * {@code shardquant.test.childJvmFlags}; outside Maven, {@link #jvmFlags(Path)} of this Java.
   */
  public static List<String> jvmFlags() {
    String flags = System.getProperty("shardquant.test.childJvmFlags");
    if (flags == null || flags.isBlank()) {
      return jvmFlags(thisJava());
    }
    return Arrays.stream(flags.trim().split("\\s+")).toList();
  }

  /** The project's JVM flags for the Java {@code java}, as {@code bin/jvm-flags} prints them for bin/shardquant. */
  public static List<String> jvmFlags(Path java) {
    Path script = repositoryRoot().resolve("bin").resolve("jvm-flags");
    try {
      Process p = new ProcessBuilder(script.toString(), java.toString()).redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
      if (p.waitFor() != 0 || out.isEmpty()) {
        throw new IllegalStateException(script + " " + java + " failed: " + out);
      }
      return Arrays.stream(out.split("\\s+")).toList();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** The checkout's root: the nearest directory above this one holding bin/jvm-flags. */
  private static Path repositoryRoot() {
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      if (Files.isRegularFile(dir.resolve("bin").resolve("jvm-flags"))) {
        return dir;
      }
    }
    throw new IllegalStateException("bin/jvm-flags not found above " + Path.of("").toAbsolutePath());
  }

  /**
   * The newest JDK of feature version 21 or later under /usr/lib/jvm (its {@code bin/java}), by the
   * version its {@code release} file gives, or empty where there is none.
   */
  public static java.util.Optional<Path> newerJdk() {
    Path jvms = Path.of("/usr/lib/jvm");
    if (!Files.isDirectory(jvms)) {
      return java.util.Optional.empty();
    }
    Pattern version = Pattern.compile("(?m)^JAVA_VERSION=\"(\\d+)");
    Path best = null;
    int bestVersion = 20;
    try (var homes = Files.list(jvms)) {
      for (Path home : homes.sorted().toList()) {
        Path release = home.resolve("release");
        Path java = home.resolve("bin").resolve("java");
        if (!Files.isRegularFile(release) || !Files.isExecutable(java)) {
          continue;
        }
        Matcher m = version.matcher(Files.readString(release));
        if (m.find() && Integer.parseInt(m.group(1)) > bestVersion) {
          bestVersion = Integer.parseInt(m.group(1));
          best = java;
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return java.util.Optional.ofNullable(best);
  }

  /** This JVM's classpath (Surefire sets java.class.path to the real test classpath). */
  public static String testClasspath() {
    return System.getProperty("java.class.path");
  }

  /** Distinct free loopback ports, all held open until every one is chosen. */
  public static int[] freePorts(int n) throws IOException {
    List<ServerSocket> held = new ArrayList<>();
    try {
      int[] ports = new int[n];
      for (int i = 0; i < n; i++) {
        ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress());
        held.add(s);
        ports[i] = s.getLocalPort();
      }
      return ports;
    } finally {
      for (ServerSocket s : held) {
        s.close();
      }
    }
  }

  /** Waits until stdout or stderr contains {@code text}; fails with the logs if the JVM exits or time runs out. */
  public void awaitLog(String text, Duration timeout) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      if (out().contains(text) || err().contains(text)) {
        return;
      }
      if (!process.isAlive()) {
        throw new AssertionError(name + " exited (" + process.exitValue() + ") before logging '" + text + "'\n" + logs());
      }
      if (System.nanoTime() > deadline) {
        throw new AssertionError(name + " did not log '" + text + "' within " + timeout.toSeconds() + " s\n" + logs());
      }
      Thread.sleep(100);
    }
  }

  /** Waits for the JVM to exit and returns its status; kills it and fails with its logs on timeout. */
  public int waitFor(Duration timeout) throws InterruptedException {
    if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
      close();
      throw new AssertionError(name + " did not exit within " + timeout.toSeconds() + " s\n" + logs());
    }
    return process.exitValue();
  }

  public String out() {
    return read(out);
  }

  public String err() {
    return read(err);
  }

  /** Both outputs, labelled, for failure messages. */
  public String logs() {
    return "--- " + name + " stdout (" + out + ")\n" + out() + "\n--- " + name + " stderr (" + err + ")\n" + err();
  }

  private static String read(Path p) {
    try {
      return Files.exists(p) ? Files.readString(p, StandardCharsets.UTF_8) : "";
    } catch (IOException e) {
      return "(unreadable: " + e + ")";
    }
  }

  /** Kills the JVM and every process it started, and waits for them to go. */
  @Override
  public void close() {
    List<ProcessHandle> all = new ArrayList<>(process.descendants().toList());
    all.add(0, process.toHandle());
    all.forEach(ProcessHandle::destroyForcibly);
    for (ProcessHandle h : all) {
      try {
        h.onExit().get(10, TimeUnit.SECONDS);
      } catch (Exception e) {
        // Best effort: a process that outlives 10 s after SIGKILL is beyond a test's reach.
      }
    }
  }
}
