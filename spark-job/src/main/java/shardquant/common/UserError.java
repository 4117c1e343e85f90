package shardquant.common;

/**
 * A problem with the user's input or arguments: its message is the one line the user sees (file,
 * tensor, what is wrong, what to do), the CLI exits 2, and nothing is written where a loader reads.
 *
 * <p>Thrown on executors too: Spark carries only the text of a task's exception back to the driver,
 * so the message carries a marker that {@link #findIn(Throwable)} recognizes in whatever wraps it.
 */
public class UserError extends RuntimeException {
  private static final long serialVersionUID = 1L;
  private static final String MARK = "[shardquant-user-error] ";

  public UserError(String message) {
    super(message);
  }

  public UserError(String message, Throwable cause) {
    super(message, cause);
  }

  /** The text to put in an exception that must cross from an executor to the driver. */
  public String marked() {
    return MARK + getMessage() + " " + MARK.trim();
  }

  /** An executor-side user error: its message survives Spark's wrapping. */
  public static RuntimeException onExecutor(String message) {
    return new RuntimeException(new UserError(message).marked());
  }

  /** The user error in {@code t} or its causes (also one reported only as text by Spark), or null. */
  public static String findIn(Throwable t) {
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (c instanceof UserError u) {
        return u.getMessage();
      }
      String m = c.getMessage();
      if (m != null) {
        int a = m.indexOf(MARK);
        if (a >= 0) {
          int b = m.indexOf(" " + MARK.trim(), a + MARK.length());
          return b > 0 ? m.substring(a + MARK.length(), b) : m.substring(a + MARK.length()).lines().findFirst().orElse("");
        }
      }
    }
    return null;
  }

  /**
   * A Spark job's failure as the driver rethrows it: the user error a task threw (exit 2, its one line),
   * else the exception itself, unchecked (Spark throws its checked SparkException without declaring it).
   */
  public static RuntimeException fromJob(Exception e) {
    String user = findIn(e);
    if (user != null) {
      return new UserError(user, e);
    }
    if (e instanceof RuntimeException r) {
      return r;
    }
    Throwable said = e instanceof java.util.concurrent.ExecutionException && e.getCause() != null ? e.getCause() : e;
    return new IllegalStateException(said.getMessage(), e);
  }
}
