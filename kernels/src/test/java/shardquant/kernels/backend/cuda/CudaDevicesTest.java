package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Spark's GPU addresses to CUDA ordinals, with and without CUDA_VISIBLE_DEVICES. */
class CudaDevicesTest {
  @Test
  void withoutVisibleDevicesTheAddressIsTheOrdinal() {
    assertEquals(0, CudaDevices.ordinalFor("0", null));
    assertEquals(3, CudaDevices.ordinalFor(" 3 ", ""));
  }

  @Test
  void visibleDevicesRenumber() {
    assertEquals(1, CudaDevices.ordinalFor("3", "2,3"));
    assertEquals(0, CudaDevices.ordinalFor("2", "2, 3"));
    assertEquals(1, CudaDevices.ordinalFor("GPU-b1c2", "GPU-a0f1,GPU-b1c2"));
  }

  @Test
  void anAddressCudaCannotSeeIsAClearError() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaDevices.ordinalFor("1", "2,3"));
    assertTrue(e.getMessage().contains("not among CUDA_VISIBLE_DEVICES=2,3"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> CudaDevices.ordinalFor("GPU-x", null));
    assertTrue(e.getMessage().contains("not a device index"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> CudaDevices.ordinalFor(" ", null));
  }
}
