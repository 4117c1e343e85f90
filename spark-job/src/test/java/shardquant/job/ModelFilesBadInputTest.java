package shardquant.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import shardquant.JobTestSupport;
import shardquant.JobTestSupport.Run;
import shardquant.ModelDirs;

/**
 * A model directory's other files are checked before any heavy work: a config.json that is not JSON or
 * that already holds a quantization_config, and a file that cannot be read, exit 2 with one line naming
 * the file and nothing in the output. A single .safetensors input has no directory to copy: one line
 * says so and the weights are written as usual.
 */
class ModelFilesBadInputTest {
  @TempDir
  Path tmp;

  @Test
  void configThatIsNotJson() throws IOException {
    Path in = ModelDirs.tiedLlama(tmp.resolve("in"));
    Files.writeString(in.resolve("config.json"), "{\"hidden_size\": 128,,}");
    BadInputTest.assertRefused(JobTestSupport.quantize(in, tmp.resolve("out"), "--recipe", "8da4w"), tmp.resolve("out"),
        in.resolve("config.json").toString(), "is not valid JSON", "line 1");
    assertFalse(Files.exists(tmp.resolve("out")), "refused before the output directory is made");
  }

  @Test
  void configOfAnAlreadyQuantizedModel() throws IOException {
    Path in = ModelDirs.tiedLlama(tmp.resolve("in"));
    String config = Files.readString(in.resolve("config.json"));
    Files.writeString(in.resolve("config.json"),
        config.replace("\"bos_token_id\": 1,", "\"bos_token_id\": 1,\n  \"quantization_config\": {\"quant_method\": \"fp8\"},"));
    BadInputTest.assertRefused(JobTestSupport.quantize(in, tmp.resolve("out"), "--recipe", "int8-weight-only"),
        tmp.resolve("out"), in.resolve("config.json").toString(), "already has a quantization_config", "'fp8'");
  }

  @Test
  void configThatIsNotAnObject() throws IOException {
    Path in = ModelDirs.tiedLlama(tmp.resolve("in"));
    Files.writeString(in.resolve("config.json"), "[1, 2]\n");
    BadInputTest.assertRefused(JobTestSupport.quantize(in, tmp.resolve("out"), "--recipe", "8da4w"), tmp.resolve("out"),
        in.resolve("config.json").toString(), "is not a JSON object");
  }

  @Test
  void unreadableModelFile() throws IOException {
    Path in = ModelDirs.tiedLlama(tmp.resolve("in"));
    Files.delete(in.resolve("tokenizer.json"));
    Files.createSymbolicLink(in.resolve("tokenizer.json"), tmp.resolve("nowhere.json")); // dangling: cannot be opened
    BadInputTest.assertRefused(JobTestSupport.quantize(in, tmp.resolve("out"), "--recipe", "8da4w"), tmp.resolve("out"),
        in.resolve("tokenizer.json").toString(), "cannot be read");
  }

  @Test
  void singleFileInputSaysThereIsNoDirectoryToCopy() throws IOException {
    Path in = ModelDirs.tiedLlama(tmp.resolve("in"));
    Path out = tmp.resolve("out");
    Run r = JobTestSupport.quantize(in.resolve("model-00001-of-00002.safetensors"), out, "--recipe", "8da4w");
    assertEquals(0, r.status(), r::toString);
    assertTrue(r.err().contains("plan: model files: none (the input is one .safetensors file, not a model directory"),
        r::toString);
    assertFalse(Files.exists(out.resolve("config.json")));
    assertTrue(Files.exists(out.resolve("_SUCCESS")));
  }
}
