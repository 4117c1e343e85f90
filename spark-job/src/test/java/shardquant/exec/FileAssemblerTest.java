package shardquant.exec;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The report's backend of a tensor whose shards different backends quantized. */
class FileAssemblerTest {
  @Test
  void aTensorNamesEachBackendOnceWhateverOrderItsShardsArrivedIn() {
    assertEquals("cpu-simd", FileAssembler.bothBackends("cpu-simd", "cpu-simd"));
    assertEquals("cpu-simd+reference", FileAssembler.bothBackends("reference", "cpu-simd"));
    assertEquals("cpu-simd+reference", FileAssembler.bothBackends("cpu-simd", "reference"));
    assertEquals("cpu-simd+reference", FileAssembler.bothBackends("cpu-simd+reference", "cpu-simd"));
    assertEquals("cpu-simd+cuda+reference", FileAssembler.bothBackends("reference+cuda", "cpu-simd"));
  }
}
