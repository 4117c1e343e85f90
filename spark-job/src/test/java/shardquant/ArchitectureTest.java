package shardquant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.spi.ToolProvider;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The packages of every module's main classes (kernels, arrow-codec, spark-job) form no cycle, and each
 * imports only from the layers below its own, as {@link #LAYERS} declares them. The dependencies are the
 * compiled classes' own, as the JDK's {@code jdeps} reads them: imports, fully qualified names, field and
 * method types alike.
 */
class ArchitectureTest {
  /**
   * Every package under {@code shardquant.}, top to bottom. A package imports only from layers below its
   * own; packages of one layer (separated by {@code |}) do not import each other. A new package goes where
   * it belongs here.
   */
  static final List<String> LAYERS = List.of(
      "cli",
      "bench | verify",
      "job",
      "exec | commit",
      "plan",
      "io",
      "common",
      "arrow",
      "kernels.bench",
      "kernels.select",
      "kernels.backend.cuda | kernels.backend.simd",
      "kernels.backend.reference",
      "kernels.backend",
      "kernels.golden | kernels.loader",
      "kernels.repack",
      "kernels.quant",
      "kernels.layout | kernels.safetensors | kernels.verify",
      "kernels.tensor",
      "kernels.dtype");

  private static final String ROOT = "shardquant.";
  private static final Pattern EDGE = Pattern.compile("^\\s+(shardquant\\.\\S+)\\s+->\\s+(shardquant\\.\\S+)(\\s|$)");

  /** "from class -> to class" of every dependency between two of our packages. */
  private static Set<String> classEdges;

  @BeforeAll
  static void readDependencies() throws Exception {
    ToolProvider jdeps = ToolProvider.findFirst("jdeps")
        .orElseThrow(() -> new AssertionError("this Java has no jdeps (a JDK, not a JRE, runs the tests): "
            + System.getProperty("java.home")));
    List<String> args = new ArrayList<>(List.of("-verbose:class", "-e", "shardquant\\..*"));
    // each module's main classes, where the build put them (target/classes, or its jar)
    for (Class<?> c : List.of(shardquant.kernels.tensor.Tensor.class, shardquant.arrow.ArrowShards.class,
        shardquant.job.QuantizeJob.class)) {
      args.add(location(c).toString());
    }
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int rc = jdeps.run(new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8),
        args.toArray(String[]::new));
    assertEquals(0, rc, () -> "jdeps " + args + " failed: " + err.toString(StandardCharsets.UTF_8));
    classEdges = new TreeSet<>();
    for (String line : out.toString(StandardCharsets.UTF_8).lines().toList()) {
      Matcher m = EDGE.matcher(line);
      if (m.find() && !packageOf(m.group(1)).equals(packageOf(m.group(2)))) {
        classEdges.add(topLevel(m.group(1)) + " -> " + topLevel(m.group(2)));
      }
    }
    assertTrue(classEdges.size() > 50, () -> "jdeps found only " + classEdges + " in " + args);
  }

  @Test
  void everyPackageHasALayer() {
    Map<String, Integer> layers = layers();
    Set<String> missing = new TreeSet<>();
    for (String e : classEdges) {
      for (String c : e.split(" -> ")) {
        if (!layers.containsKey(packageOf(c))) {
          missing.add(packageOf(c));
        }
      }
    }
    assertEquals(Set.of(), missing, "packages not in ArchitectureTest.LAYERS: add each where it belongs");
  }

  @Test
  void noPackageImportsUpOrSideways() {
    Map<String, Integer> layers = layers();
    Set<String> wrong = new TreeSet<>();
    for (String e : classEdges) {
      String[] ends = e.split(" -> ");
      Integer from = layers.get(packageOf(ends[0]));
      Integer to = layers.get(packageOf(ends[1]));
      if (from != null && to != null && from >= to) {
        wrong.add(e + (from.equals(to) ? " (sideways)" : " (up)"));
      }
    }
    assertEquals(Set.of(), wrong, "imports against the layers in ArchitectureTest.LAYERS (top first: " + LAYERS + ")");
  }

  @Test
  void noPackageCycle() {
    Map<String, Set<String>> graph = new TreeMap<>();
    Map<String, Set<String>> why = new HashMap<>();
    for (String e : classEdges) {
      String[] ends = e.split(" -> ");
      String from = packageOf(ends[0]);
      String to = packageOf(ends[1]);
      graph.computeIfAbsent(from, k -> new TreeSet<>()).add(to);
      graph.computeIfAbsent(to, k -> new TreeSet<>());
      why.computeIfAbsent(from + " -> " + to, k -> new TreeSet<>()).add(e);
    }
    List<String> cycles = new ArrayList<>();
    for (Set<String> scc : stronglyConnected(graph)) {
      if (scc.size() > 1) {
        List<String> edges = new ArrayList<>();
        for (String from : scc) {
          for (String to : graph.get(from)) {
            if (scc.contains(to)) {
              edges.add(from + " -> " + to + " " + why.get(from + " -> " + to));
            }
          }
        }
        cycles.add(scc + ": " + edges);
      }
    }
    assertEquals(List.of(), cycles, "package cycles");
  }

  /** Tarjan's strongly connected components. */
  private static List<Set<String>> stronglyConnected(Map<String, Set<String>> graph) {
    Map<String, Integer> index = new HashMap<>();
    Map<String, Integer> low = new HashMap<>();
    Deque<String> stack = new ArrayDeque<>();
    Set<String> onStack = new TreeSet<>();
    List<Set<String>> out = new ArrayList<>();
    for (String v : graph.keySet()) {
      if (!index.containsKey(v)) {
        connect(v, graph, index, low, stack, onStack, out);
      }
    }
    return out;
  }

  private static void connect(String v, Map<String, Set<String>> graph, Map<String, Integer> index, Map<String, Integer> low,
      Deque<String> stack, Set<String> onStack, List<Set<String>> out) {
    index.put(v, index.size());
    low.put(v, index.get(v));
    stack.push(v);
    onStack.add(v);
    for (String w : graph.get(v)) {
      if (!index.containsKey(w)) {
        connect(w, graph, index, low, stack, onStack, out);
        low.put(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.contains(w)) {
        low.put(v, Math.min(low.get(v), index.get(w)));
      }
    }
    if (low.get(v).equals(index.get(v))) {
      Set<String> scc = new TreeSet<>();
      String w;
      do {
        w = stack.pop();
        onStack.remove(w);
        scc.add(w);
      } while (!w.equals(v));
      out.add(scc);
    }
  }

  /** Package name (without {@code shardquant.}) to layer, 0 at the top. */
  private static Map<String, Integer> layers() {
    Map<String, Integer> layers = new HashMap<>();
    for (int i = 0; i < LAYERS.size(); i++) {
      for (String p : LAYERS.get(i).split("\\|")) {
        Integer before = layers.put(p.strip(), i);
        assertEquals(null, before, () -> p.strip() + " is in LAYERS twice");
      }
    }
    return layers;
  }

  /** The package of a class, without {@code shardquant.}. */
  private static String packageOf(String className) {
    return className.substring(ROOT.length(), className.lastIndexOf('.'));
  }

  private static String topLevel(String className) {
    int nested = className.indexOf('$');
    return nested < 0 ? className : className.substring(0, nested);
  }

  private static Path location(Class<?> c) throws URISyntaxException {
    return Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI());
  }
}
