package shardquant.kernels.select;

import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * What {@link Backends} logs while it is open (its choice, self-check failures, mid-job fallbacks), for
 * the tests that break a backend on purpose and count the warnings: here and in spark-job's job tests.
 */
public final class BackendsLog extends Handler implements AutoCloseable {
  private static final Logger BACKENDS = Logger.getLogger(Backends.class.getName());
  private final List<LogRecord> records = new ArrayList<>();

  /** Listens from now until {@link #close}. */
  public BackendsLog() {
    BACKENDS.addHandler(this);
  }

  @Override
  public synchronized void publish(LogRecord r) {
    records.add(r);
  }

  /** The messages logged at WARNING, in order. */
  public synchronized List<String> warnings() {
    return records.stream().filter(r -> r.getLevel() == Level.WARNING).map(LogRecord::getMessage).toList();
  }

  /** Every record as {@code LEVEL message}, for assertion messages. */
  @Override
  public synchronized String toString() {
    return records.stream().map(r -> r.getLevel() + " " + r.getMessage()).toList().toString();
  }

  @Override
  public void flush() {}

  @Override
  public void close() {
    BACKENDS.removeHandler(this);
  }
}
