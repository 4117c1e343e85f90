package shardquant.kernels.safetensors;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A safetensors file that cannot be read as one. The message names the file, the tensor where there is
 * one, the problem, and the byte offset where it helps: it is the line a user sees.
 */
public final class SafetensorsFormatException extends IOException {
  private final String file;
  private final String tensor;

  public SafetensorsFormatException(Path file, String tensor, String problem) {
    this(file.toString(), tensor, problem);
  }

  /** {@code file} is how the user named it: a local path or a Hadoop FileSystem URI. */
  public SafetensorsFormatException(String file, String tensor, String problem) {
    super(file + (tensor == null ? "" : ": tensor '" + tensor + "'") + ": " + problem);
    this.file = file;
    this.tensor = tensor;
  }

  public String file() {
    return file;
  }

  /** The tensor the problem is in, or null when it is in the file as a whole. */
  public String tensor() {
    return tensor;
  }
}
