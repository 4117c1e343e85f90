package shardquant.common;

import java.time.Instant;
import java.util.Optional;

/**
 * A process of this host as a file records its owner (the output claim, a scratch folder's owner file):
 * its pid and its start time, since the pid alone may by now name a later process given the same number.
 */
public final class LocalProcess {
  private LocalProcess() {}

  /** The start time of {@code p} as the files record it: its start instant, or "" where the OS does not say. */
  public static String startOf(ProcessHandle p) {
    return p.info().startInstant().map(Instant::toString).orElse("");
  }

  /**
   * Whether the process recorded as {@code pid}, started at {@code recordedStart} ({@link #startOf}), still
   * runs: a live process has that pid and, where both start times are known, the same start time. Where
   * either is unknown the pid alone decides, so that a live owner is never taken for gone.
   */
  public static boolean alive(long pid, String recordedStart) {
    Optional<ProcessHandle> process = ProcessHandle.of(pid);
    if (process.isEmpty() || !process.get().isAlive()) {
      return false;
    }
    String start = startOf(process.get());
    return recordedStart.isEmpty() || start.isEmpty() || recordedStart.equals(start);
  }
}
