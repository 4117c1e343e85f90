package shardquant.kernels;

import java.nio.file.Files;
import java.nio.file.Path;

/** Finds {@code shared/golden} beside the checkout (where CI and developers have it). */
public final class GoldenFiles {
  private GoldenFiles() {}

  /** {@code shared/golden/<name>}; fails (never skips) when it is missing, since CI always has it. */
  public static Path dir(String name) {
    for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
      Path candidate = p.resolve("shared").resolve("golden").resolve(name);
      if (Files.isDirectory(candidate)) {
        return candidate;
      }
    }
    throw new IllegalStateException("shared/golden/" + name + " not found above " + Path.of("").toAbsolutePath()
        + "; the golden vectors live in ../shared/golden beside the checkout");
  }
}
