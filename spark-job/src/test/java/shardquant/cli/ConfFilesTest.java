package shardquant.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import shardquant.job.JobOptions;
import shardquant.job.ShardquantKryoRegistrator;
import shardquant.kernels.quant.Recipe;

/** The files in conf/ stay true to the code: every recipe file parses, the class names exist, the GPU script works. */
class ConfFilesTest {
  private static Path conf() {
    for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
      if (Files.isDirectory(p.resolve("conf").resolve("recipes"))) {
        return p.resolve("conf");
      }
    }
    throw new IllegalStateException("conf/ not found above " + Path.of("").toAbsolutePath());
  }

  @Test
  void everyRecipeHasAFileThatParses() throws IOException {
    List<Path> files;
    try (Stream<Path> s = Files.list(conf().resolve("recipes"))) {
      files = s.sorted().toList();
    }
    assertEquals(Recipe.values().length, files.size(), files::toString);
    for (Path f : files) {
      JobOptions o = Main.jobOptions("quantize", new String[] {"--recipe-file", f.toString(), "--input", "in", "--output", "out"});
      assertEquals(f.getFileName().toString().replace(".properties", ""), o.spec().config().recipe().cliName(), f::toString);
    }
  }

  @Test
  void sparkDefaultsAndDagNameRealClasses() throws IOException {
    for (String file : List.of("spark-defaults.conf.template", "airflow/shardquant_dag.py")) {
      String text = Files.readString(conf().resolve(file));
      assertTrue(text.contains(ShardquantKryoRegistrator.class.getName()), file);
    }
    assertTrue(Files.readString(conf().resolve("airflow/shardquant_dag.py")).contains(Main.class.getName()));
    assertTrue(Files.readString(conf().resolve("spark-defaults.conf.template")).contains(shardquant.exec.TaskGpu.TASKS_PER_GPU));
  }

  @Test
  void gpuDiscoveryScriptPassesItsChecks() throws IOException, InterruptedException {
    Path log = Files.createTempFile("gpu-script", ".log");
    Process p = new ProcessBuilder("bash", conf().resolve("test-getGpusResources.sh").toString())
        .redirectErrorStream(true).redirectOutput(log.toFile()).start();
    int status = p.waitFor();
    String out = Files.readString(log);
    Files.delete(log);
    assertEquals(0, status, out);
    assertTrue(out.contains("0 failed"), out);
    assertTrue(new File(conf().resolve("getGpusResources.sh").toString()).canExecute());
  }
}
