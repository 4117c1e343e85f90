package shardquant.cli;

import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import shardquant.common.UserError;

/**
 * {@code --name value} options of one command, checked against the names it takes. {@code --conf}
 * may repeat; {@code --recipe-file} supplies defaults for recipe, group-size, bits, include and exclude.
 */
final class Args {
  private final String command;
  private final Map<String, String> values = new LinkedHashMap<>();
  private final List<String> conf = new ArrayList<>();

  Args(String command, String[] args, Set<String> allowed) {
    this.command = command;
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (!a.startsWith("--") || !allowed.contains(a.substring(2))) {
        throw new UserError(command + ": unknown option '" + a + "'; it takes " + allowed.stream().sorted().map(s -> "--" + s).toList());
      }
      if (i + 1 >= args.length) {
        throw new UserError(command + ": option " + a + " needs a value");
      }
      String name = a.substring(2);
      String value = args[++i];
      if (name.equals("conf")) {
        conf.add(value);
      } else if (values.put(name, value) != null) {
        throw new UserError(command + ": option " + a + " is given twice");
      }
    }
    String file = values.get("recipe-file");
    if (file != null) {
      Properties p = new Properties();
      try (Reader r = Files.newBufferedReader(Path.of(file))) {
        p.load(r);
      } catch (NoSuchFileException e) {
        throw new UserError(command + ": --recipe-file " + file + ": no such file");
      } catch (IOException e) {
        throw new UserError(command + ": --recipe-file " + file + ": " + e.getMessage());
      }
      for (String key : p.stringPropertyNames()) {
        if (!Set.of("recipe", "group-size", "bits", "include", "exclude").contains(key)) {
          throw new UserError(file + ": unknown key '" + key + "' (a recipe file sets recipe, group-size, bits, include, exclude)");
        }
        values.putIfAbsent(key, p.getProperty(key).trim());
      }
    }
  }

  String get(String name) {
    return values.get(name);
  }

  String required(String name) {
    String v = values.get(name);
    if (v == null) {
      throw new UserError(command + ": --" + name + " is required");
    }
    return v;
  }

  Integer integer(String name) {
    String v = values.get(name);
    try {
      return v == null ? null : Integer.valueOf(v);
    } catch (NumberFormatException e) {
      throw new UserError(command + ": --" + name + " must be an integer, got '" + v + "'");
    }
  }

  /** A byte count: 65536, 64k, 64m, 1g (binary units; "mb", "mib" also read). */
  long bytes(String name, long fallback) {
    String v = values.get(name);
    if (v == null) {
      return fallback;
    }
    return parseBytes("--" + name, v);
  }

  static long parseBytes(String what, String v) {
    String s = v.trim().toLowerCase(Locale.ROOT).replaceAll("i?b$", "");
    long unit = 1;
    if (!s.isEmpty() && "kmgt".indexOf(s.charAt(s.length() - 1)) >= 0) {
      unit = 1L << (10 * ("kmgt".indexOf(s.charAt(s.length() - 1)) + 1));
      s = s.substring(0, s.length() - 1);
    }
    try {
      long n = Long.parseLong(s.trim());
      if (n <= 0) {
        throw new NumberFormatException();
      }
      return Math.multiplyExact(n, unit);
    } catch (NumberFormatException | ArithmeticException e) {
      throw new UserError(what + " must be a positive byte count such as 65536, 64m or 1g, got '" + v + "'");
    }
  }

  /** The {@code --conf key=value} settings, in order. */
  Map<String, String> sparkConf() {
    Map<String, String> out = new LinkedHashMap<>();
    for (String c : conf) {
      int eq = c.indexOf('=');
      if (eq <= 0) {
        throw new UserError(command + ": --conf takes key=value, got '" + c + "'");
      }
      out.put(c.substring(0, eq), c.substring(eq + 1));
    }
    return out;
  }
}
