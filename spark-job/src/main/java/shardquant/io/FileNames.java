package shardquant.io;

import java.nio.charset.StandardCharsets;
import java.util.HexFormat;

/**
 * The one way a name read from an input file (a tensor name) becomes part of a file name. Tensor names
 * are data: {@code ../../x.weight}, {@code /etc/y}, a NUL or a newline are all legal safetensors keys, so
 * a name is never joined onto a path as it is. {@link #of} turns any name into a single file-name
 * component, never {@code .}, {@code ..}, empty or hidden, that names nothing outside its directory,
 * and gives distinct names distinct results.
 */
public final class FileNames {
  /**
   * At most this many bytes (all ASCII). With a suffix such as {@code .rows-<a>-<b>.arrow} and a writer's
   * hidden temporary name ({@code .<name>.<uuid>.tmp}) the whole stays under the usual 255-byte limit.
   */
  public static final int MAX_BYTES = 128;

  /** Marks a name cut to {@link #MAX_BYTES}: an encoded name never holds it otherwise. */
  private static final char CUT = '~';
  private static final int HASH_CHARS = 16;
  private static final HexFormat HEX = HexFormat.of().withUpperCase();

  private FileNames() {}

  /**
   * {@code name} as one file-name component. ASCII letters, digits, {@code -}, {@code _} and {@code .} stay
   * as they are (so {@code model.layers.0.mlp.up_proj.weight} is unchanged); every other byte of the
   * name's UTF-8 (separators {@code /} and {@code \}, {@code %}, control characters, spaces, non-ASCII) is
   * written {@code %XX}, as is a leading dot; an unpaired surrogate, which has no UTF-8, is written
   * {@code %uXXXX}. A name whose encoding is longer than {@link #MAX_BYTES}, or is empty, is written as
   * the start of its encoding, {@code ~}, and 16 hex digits of the SHA-256 of the whole encoding
   * (which, unlike the name's UTF-8, tells apart names that differ only in unpaired surrogates).
   */
  public static String of(String name) {
    StringBuilder out = new StringBuilder();
    int fits = 0; // the longest whole-character prefix that leaves room for the cut mark and hash
    for (int i = 0; i < name.length(); ) {
      int c = name.codePointAt(i);
      i += Character.charCount(c);
      if (isKept(c) && !(c == '.' && out.length() == 0)) {
        out.append((char) c);
      } else if (c >= Character.MIN_SURROGATE && c <= Character.MAX_SURROGATE) {
        out.append("%u").append(HEX.toHexDigits((char) c));
      } else {
        for (byte b : Character.toString(c).getBytes(StandardCharsets.UTF_8)) {
          out.append('%').append(HEX.toHexDigits(b));
        }
      }
      if (out.length() <= MAX_BYTES - 1 - HASH_CHARS) {
        fits = out.length();
      }
    }
    if (out.length() > 0 && out.length() <= MAX_BYTES) {
      return out.toString();
    }
    return out.substring(0, fits) + CUT + HexFormat.of().formatHex(Storage.sha256().digest(
        out.toString().getBytes(StandardCharsets.US_ASCII))).substring(0, HASH_CHARS);
  }

  private static boolean isKept(int c) {
    return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.';
  }
}
