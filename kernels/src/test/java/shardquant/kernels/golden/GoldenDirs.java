package shardquant.kernels.golden;

import java.nio.file.Files;
import java.nio.file.Path;

/** Where the shared golden vectors are: -Dshardquant.golden=DIR, else shared/golden/torchao-0.19 above the module. */
final class GoldenDirs {
  private GoldenDirs() {}

  static Path torchao019() {
    String configured = System.getProperty("shardquant.golden");
    if (configured != null) {
      return Path.of(configured);
    }
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      Path candidate = dir.resolve("shared/golden/torchao-0.19");
      if (Files.isDirectory(candidate)) {
        return candidate;
      }
    }
    return Path.of("/work/shared/golden/torchao-0.19");
  }
}
