package shardquant.kernels.layout;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/** Misaligned shapes, wrong lengths and out-of-range codes are refused with the offending values named. */
class Int4LayoutArgumentTest {

  private static void assertRefused(Executable call, String... mentioned) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
    for (String m : mentioned) {
      assertTrue(e.getMessage().contains(m), "message \"" + e.getMessage() + "\" should mention \"" + m + "\"");
    }
  }

  @Test
  void tensorCoreTiledRefusesMisalignedShapes() {
    assertRefused(() -> TensorCoreTiledInt4Layout.pack(new int[12 * 256], 12, 256, 8), "N % 8 == 0", "N = 12");
    assertRefused(() -> TensorCoreTiledInt4Layout.pack(new int[8 * 64], 8, 64, 8), "K % 128 == 0", "K = 64");
    assertRefused(() -> TensorCoreTiledInt4Layout.pack(new int[8 * 48], 8, 48, 2), "K % 32 == 0", "K = 48");
    assertRefused(() -> TensorCoreTiledInt4Layout.unpack(new int[8 * 96 / 8], 8, 96, 4), "K % 64 == 0", "K = 96");
    assertRefused(() -> TensorCoreTiledInt4Layout.packedShape(8, 128, 3), "innerKTiles", "3");
    assertRefused(() -> TensorCoreTiledInt4Layout.packedShape(8, 256, 16), "innerKTiles", "16");
    assertRefused(() -> TensorCoreTiledInt4Layout.packedShape(0, 256, 8), "N = 0");
  }

  @Test
  void cpuRefusesMisalignedShapes() {
    assertRefused(() -> CpuInt4Layout.pack(new int[24 * 32], 24, 32), "N % 16 == 0", "N = 24");
    assertRefused(() -> CpuInt4Layout.pack(new int[8 * 32], 8, 32), "N % 16 == 0", "N = 8");
    assertRefused(() -> CpuInt4Layout.pack(new int[16 * 33], 16, 33), "K % 2 == 0", "K = 33");
    assertRefused(() -> CpuInt4Layout.unpack(new byte[40 * 16], 40, 32), "N % 16 == 0", "N = 40");
  }

  @Test
  void pairPackingRefusesOddK() {
    assertRefused(() -> Uint4PairPacking.pack(new int[3 * 5], 3, 5), "K % 2 == 0", "K = 5");
    assertRefused(() -> Uint4PairPacking.unpack(new byte[6], 3, 5), "K % 2 == 0", "K = 5");
  }

  @Test
  void codesOutsideUint4AreRefusedWithTheirPosition() {
    int[] q = new int[16 * 128];
    q[3 * 128 + 7] = 16;
    assertRefused(() -> TensorCoreTiledInt4Layout.pack(q, 16, 128, 8), "code 16", "[3][7]");
    assertRefused(() -> CpuInt4Layout.pack(q, 16, 128), "code 16", "[3][7]");
    q[3 * 128 + 7] = -1;
    assertRefused(() -> Uint4PairPacking.pack(q, 16, 128), "code -1", "[3][7]");
  }

  @Test
  void wrongArrayLengthsAreRefused() {
    assertRefused(() -> TensorCoreTiledInt4Layout.pack(new int[8 * 128 - 1], 8, 128, 8), "1023", "1024");
    assertRefused(() -> TensorCoreTiledInt4Layout.unpack(new int[127], 8, 128, 8), "127", "128");
    assertRefused(() -> CpuInt4Layout.unpack(new byte[16 * 16 + 1], 16, 32), "257", "256");
    assertRefused(() -> Uint4PairPacking.unpack(new byte[3], 2, 4), "3", "4");
  }

  @Test
  void scaleZeroRefusesMismatchedInputs() {
    Tensor s = Tensor.allocate(DType.BF16, 4, 2);
    assertRefused(() -> TinygemmScaleZero.pack(s, Tensor.allocate(DType.BF16, 4, 3)), "[4, 2]", "[4, 3]");
    assertRefused(() -> TinygemmScaleZero.pack(s, Tensor.allocate(DType.F32, 4, 2)), "zero", "float32");
    assertRefused(() -> TinygemmScaleZero.pack(Tensor.allocate(DType.BF16, 8), s), "scale", "[8]");
    assertRefused(() -> TinygemmScaleZero.scale(Tensor.allocate(DType.BF16, 2, 4, 3)), "[2, 4, 3]");
  }
}
