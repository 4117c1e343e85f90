package shardquant.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.logging.ConsoleHandler;
import java.util.logging.Formatter;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * How the kernels' java.util.logging lines (which backend runs and why, GPU warnings) read on the
 * command line: an INFO line is the message alone, like the CLI's own {@code plan:} and {@code demo:}
 * lines; other levels are prefixed with theirs. With {@code SHARDQUANT_DEBUG} set, FINE lines (the CUDA
 * probe's exception, with its temporary paths) and stack traces are shown too. A JVM given its own
 * logging configuration or format keeps it.
 */
final class ConsoleLog {
  /** Held: java.util.logging keeps loggers weakly, and a collected logger forgets its level. */
  private static final Logger SHARDQUANT = Logger.getLogger("shardquant");

  private ConsoleLog() {}

  static void install(boolean debug) {
    if (System.getProperty("java.util.logging.config.file") != null
        || System.getProperty("java.util.logging.config.class") != null
        || System.getProperty("java.util.logging.SimpleFormatter.format") != null) {
      return;
    }
    for (Handler h : Logger.getLogger("").getHandlers()) {
      if (h instanceof ConsoleHandler) {
        h.setFormatter(new Line());
        if (debug) {
          h.setLevel(Level.FINE);
        }
      }
    }
    if (debug) {
      SHARDQUANT.setLevel(Level.FINE);
    }
  }

  /** One line per message; a thrown exception's stack trace follows it. */
  static final class Line extends Formatter {
    @Override
    public String format(LogRecord r) {
      StringBuilder b = new StringBuilder();
      if (r.getLevel() != Level.INFO) {
        b.append(r.getLevel().getName()).append(": ");
      }
      b.append(formatMessage(r)).append(System.lineSeparator());
      if (r.getThrown() != null) {
        StringWriter trace = new StringWriter();
        r.getThrown().printStackTrace(new PrintWriter(trace));
        b.append(trace);
      }
      return b.toString();
    }
  }
}
