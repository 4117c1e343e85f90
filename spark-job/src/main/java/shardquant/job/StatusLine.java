package shardquant.job;

import java.io.PrintStream;

/**
 * A status line on the console (progress of a job, of writing the demo's checkpoint). On a terminal it
 * is redrawn in place: a carriage return, the new text, spaces over what is left of the previous one, and
 * a newline when it ends. Elsewhere (Airflow, spark-submit's logs, tests) each update is a line of its
 * own, since carriage returns would pile every update onto one line of a log file.
 */
public final class StatusLine {
  /**
   * System property: {@code terminal} redraws in place, {@code lines} prints one line per update. Unset,
   * the console is taken for a terminal where {@link System#console()} exists (stdin and stdout are one).
   * bin/shardquant sets it from whether stderr, where the status goes, is a terminal.
   */
  public static final String MODE_PROPERTY = "shardquant.console";
  /** Like Spark's console progress bar: the terminal's width from COLUMNS, else 80. */
  private static final String COLUMNS = "COLUMNS";

  private final PrintStream out;
  private final boolean inPlace;
  private final int width;
  /** Whether a line drawn in place still needs its newline, and its length. */
  private boolean open;
  private int shown;

  /** {@code width}: in place, longer lines are cut to {@code width - 1} characters so that none wraps. */
  StatusLine(PrintStream out, boolean inPlace, int width) {
    if (width < 2) {
      throw new IllegalArgumentException("width must be at least 2, got " + width);
    }
    this.out = out;
    this.inPlace = inPlace;
    this.width = width;
  }

  /** A status line on {@code out}, drawn in place where the console is a terminal (see {@link #MODE_PROPERTY}). */
  public static StatusLine forConsole(PrintStream out) {
    String mode = System.getProperty(MODE_PROPERTY);
    boolean terminal;
    if (mode == null) {
      terminal = System.console() != null;
    } else if (mode.equals("terminal") || mode.equals("lines")) {
      terminal = mode.equals("terminal");
    } else {
      throw new IllegalArgumentException(MODE_PROPERTY + " must be 'terminal' or 'lines', got '" + mode + "'");
    }
    int width = 80;
    try {
      width = Math.max(2, Integer.parseInt(System.getenv().getOrDefault(COLUMNS, "80").strip()));
    } catch (NumberFormatException e) {
      // not a number: keep 80, as Spark does for a missing one
    }
    return new StatusLine(out, terminal, width);
  }

  /** Shows {@code text} in place of the previous update, or as a new line. */
  public synchronized void update(String text) {
    if (!inPlace) {
      out.println(text);
    } else {
      String line = text.length() < width ? text : text.substring(0, width - 1);
      out.print("\r" + line + " ".repeat(Math.max(0, shown - line.length())));
      open = true;
      shown = line.length();
    }
    out.flush();
  }

  /** Ends a line drawn in place (its newline), so that what follows starts on a line of its own. */
  public synchronized void end() {
    if (open) {
      out.println();
      out.flush();
      open = false;
      shown = 0;
    }
  }
}
