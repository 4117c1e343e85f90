package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.select.Backends;

/**
 * The probe's answer fits the machine, never skipped: without the NVIDIA driver (CI) it says CUDA is
 * unavailable and why, {@code cuda} is refused with that reason and {@code auto} runs on the CPU; with it
 * (a GPU machine) it finds a device, and {@code auto} runs on it.
 */
class CudaProbeTest {
  private static final boolean DRIVER = Files.exists(Path.of("/proc/driver/nvidia/version"));

  @Test
  void answersOnceAndFitsTheMachine() {
    CudaProbe.Answer a = CudaProbe.answer();
    assertSame(a, CudaProbe.answer(), "cached");
    if (DRIVER) {
      assertTrue(a.available(), "the NVIDIA driver is loaded but: " + a.problem());
      assertNull(a.problem());
      assertTrue(a.arch() >= 80, a.toString());
    } else {
      assertFalse(CudaProbe.available(), "no NVIDIA driver here, yet the probe found " + a);
      String why = a.problem();
      assertTrue(why.contains("libcuda") || why.contains("driver"), why);
    }
  }

  @Test
  void cudaByNameIsRefusedWithTheReasonWhenUnavailable() {
    if (CudaProbe.available()) {
      assertEquals("cuda", Backends.forName("cuda").name());
      return;
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Backends.forName("cuda"));
    assertTrue(e.getMessage().contains(CudaProbe.problem()) && e.getMessage().contains("--backend cpu"), e.getMessage());
  }

  @Test
  void autoRunsOnCudaWhereTheProbeFindsAGpuElseOnTheCpuForTheProbesReason() {
    Backend auto = Backends.forName("auto");
    if (CudaProbe.available()) {
      assertSame(Backends.cuda(0, Backends.TASKS_PER_GPU), auto, "the probe found " + CudaProbe.answer() + ", yet auto runs on " + auto.name());
      return;
    }
    assertSame(Backends.cpu(), auto, "CUDA is unavailable here (" + CudaProbe.problem() + "), yet auto runs on " + auto.name());
    String why = CudaProbe.problem();
    assertTrue(why.contains("libcuda") || why.contains("driver"), "auto's reason for the CPU: " + why);
  }
}
