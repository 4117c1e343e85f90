package shardquant.kernels.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import shardquant.kernels.backend.cuda.CudaDifferential.Target;
import shardquant.kernels.backend.reference.ReferenceBackend;
import shardquant.kernels.backend.simd.SimdDifferential;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.Nf4Ref;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.repack.TinygemmInt4Tensor;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * {@link CudaQuantizedTensor}: every recipe's quantized tensor (quantized by the reference) goes to the
 * device and back with every part's bytes, dtype and shape and the tensor's metadata unchanged, and without
 * any kernel running (so nothing was dequantized on the way: the pytorch/ao NF4 {@code .to()} bug), even for
 * parts that are no valid quantization at all (so nothing was re-derived on the host either). Resident
 * int4 tensors dequantize and switch layout on the device exactly as the host reference does; memory is
 * freed on close.
 */
class CudaQuantizedTensorTest {
  static List<Target> targets() {
    return CudaDifferential.targets();
  }

  /** Every recipe, with intx's other bit widths and every group size of the groupwise ones. */
  static List<QuantConfig> configs() {
    List<QuantConfig> out = new ArrayList<>();
    for (Recipe r : Recipe.values()) {
      out.add(QuantConfig.of(r));
    }
    out.add(new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 64, 2));
    out.add(new QuantConfig(Recipe.INTX_WEIGHT_ONLY, 128, 8));
    out.add(new QuantConfig(Recipe.INT4_TILE_PACKED, 32, 4));
    out.add(new QuantConfig(Recipe.INT4_CPU, 256, 4));
    out.add(new QuantConfig(Recipe.INT8_DYN_ACT_INT4_WEIGHT, 128, 4));
    return out;
  }

  @ParameterizedTest
  @MethodSource("targets")
  void everyRecipeRoundTripsEveryPartUnchanged(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(90);
    int tested = 0;
    for (QuantConfig c : configs()) {
      for (DType d : SimdDifferential.FLOATS) {
        for (int[] s : new int[][] {{64, 512}, {8, 256}, {100, 1024}}) {
          if (c.recipe().kernel().refusal(s[0], s[1], d, c) != null
              || c.recipe() == Recipe.NF4 && (long) s[0] * s[1] % Nf4Ref.SHARD_ALIGNMENT != 0) { // NF4's whole-tensor mean
            continue;
          }
          QuantizedTensor q = quantize(SimdDifferential.random(d, s[0], s[1], r), c);
          assertRoundTrip(cuda, q, c + " " + d.torchName() + " " + s[0] + "x" + s[1]);
          tested++;
        }
      }
    }
    assertTrue(tested >= 30, "round trips: " + tested);
  }

  @ParameterizedTest
  @MethodSource("targets")
  void partsThatAreNoValidQuantizationComeBackUnchanged(Target t) {
    // Random bytes in every part: NaN scales, NF4 scalers and tables no quantization gives, codes out of
    // range. A move through dequantize and quantize could not return them; a byte copy does.
    CudaBackend cuda = t.backend();
    Random r = new Random(91);
    for (QuantConfig c : configs()) {
      DType d = c.recipe() == Recipe.INT4_TILE_PACKED || c.recipe() == Recipe.INT4_CPU ? DType.BF16 : DType.F32;
      Map<String, Tensor> parts = new LinkedHashMap<>();
      c.recipe().kernel().parts(64, 512, d, c).forEach(spec -> {
        Tensor p = Tensor.allocate(spec.dtype(), spec.shape());
        byte[] noise = new byte[Math.toIntExact(p.byteSize())];
        r.nextBytes(noise);
        p.bytes().put(noise);
        parts.put(spec.name(), p);
      });
      assertRoundTrip(cuda, new QuantizedTensor(c, new long[] {64, 512}, d, parts), c + " random bytes");
    }
  }

  @Test
  void manySmallChunksGiveTheSameBytes() {
    CudaBackend cuda = CudaDifferential.emulatedSmallChunks();
    Random r = new Random(92);
    for (Recipe recipe : List.of(Recipe.NF4, Recipe.INT4_TILE_PACKED, Recipe.INT8_WEIGHT_ONLY)) {
      QuantConfig c = QuantConfig.of(recipe);
      QuantizedTensor q = quantize(SimdDifferential.random(DType.BF16, 64, 1024, r), c);
      assertRoundTrip(cuda, q, c + " in 4 KiB chunks");
      try (CudaQuantizedTensor g = cuda.toDevice(q)) {
        if (recipe == Recipe.INT4_TILE_PACKED) {
          SimdDifferential.assertBytes(q.dequantize(DType.F32), g.dequantize(DType.F32), "4 KiB chunks dequantize");
        }
      }
    }
    CudaDifferential.assertNoLeaks(cuda);
  }

  /** The reference's quantization of {@code w}, with NF4's tensor-wide scaler mean from its first pass. */
  static QuantizedTensor quantize(Tensor w, QuantConfig c) {
    GlobalStats global = c.recipe() == Recipe.NF4
        ? new GlobalStats(Nf4Ref.scalerMean(w.dtype(), Nf4Ref.blockAbsmax(w))) : GlobalStats.NONE;
    return ReferenceBackend.INSTANCE.quantize(w, c, global, new QuantStats());
  }

  /** toDevice then toHost gives every part and the metadata back, and no kernel ran. */
  static void assertRoundTrip(CudaBackend cuda, QuantizedTensor q, String what) {
    long before = CudaDifferential.launches(cuda);
    QuantizedTensor back;
    try (CudaQuantizedTensor g = cuda.toDevice(q)) {
      assertEquals(q.config(), g.config(), what);
      assertArrayEquals(q.shape(), g.shape(), what);
      assertEquals(q.originalDType(), g.originalDType(), what);
      assertEquals(List.copyOf(q.parts().keySet()), g.partNames(), what);
      assertEquals(q.parts().values().stream().mapToLong(Tensor::byteSize).sum(), g.deviceBytes(), what);
      back = g.toHost();
      QuantizedTensor again = g.toHost();
      q.parts().forEach((name, p) -> SimdDifferential.assertBytes(p, again.part(name), what + " second download " + name));
    }
    assertEquals(before, CudaDifferential.launches(cuda), what + ": a kernel ran while moving the tensor");
    assertEquals(q.config(), back.config(), what);
    assertArrayEquals(q.shape(), back.shape(), what);
    assertEquals(q.originalDType(), back.originalDType(), what);
    assertEquals(List.copyOf(q.parts().keySet()), List.copyOf(back.parts().keySet()), what);
    q.parts().forEach((name, p) -> SimdDifferential.assertBytes(p, back.part(name), what + " part " + name));
    CudaDifferential.assertNoLeaks(cuda);
  }

  @ParameterizedTest
  @MethodSource("targets")
  void int4DequantizesAndSwitchesLayoutOnTheDevice(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(93);
    Tensor w = SimdDifferential.random(DType.BF16, 32, 384, r);
    for (int g : new int[] {32, 64, 128, 256}) {
      for (Recipe recipe : List.of(Recipe.INT4_TILE_PACKED, Recipe.INT4_CPU)) {
        QuantConfig c = new QuantConfig(recipe, g, 4);
        if (recipe.kernel().refusal(32, 384, DType.BF16, c) != null) {
          continue;
        }
        QuantizedTensor q = quantize(w, c);
        String what = c.toString();
        try (CudaQuantizedTensor resident = cuda.toDevice(q)) {
          long before = CudaDifferential.launches(cuda);
          for (DType out : g == 64 ? new DType[] {DType.BF16, DType.F16, DType.F32} : new DType[] {DType.BF16}) {
            SimdDifferential.assertBytes(q.dequantize(out), resident.dequantize(out), what + " dequantized to " + out);
          }
          assertTrue(CudaDifferential.launches(cuda) > before || before < 0, what + ": no kernel ran");
          assertSame(resident, resident.repack(Int4Layout.of(recipe)));
          TinygemmInt4Tensor host = TinygemmInt4Tensor.of(q);
          for (Int4Layout target : List.of(Int4Layout.TILE_PACKED, Int4Layout.CPU)) {
            if (target.recipe() == recipe || host.refusal(target) != null) {
              continue;
            }
            try (CudaQuantizedTensor other = resident.repack(target)) {
              QuantizedTensor want = host.repack(target).toQuantized();
              QuantizedTensor got = other.toHost();
              assertEquals(want.config(), got.config(), what);
              assertArrayEquals(want.shape(), got.shape(), what);
              want.parts().forEach((name, p) -> SimdDifferential.assertBytes(p, got.part(name), what + " -> " + target.cliName()));
              SimdDifferential.assertBytes(q.dequantize(DType.BF16), other.dequantize(DType.BF16), what + " repacked dq");
              try (CudaQuantizedTensor back = other.repack(Int4Layout.of(recipe))) {
                QuantizedTensor b = back.toHost();
                q.parts().forEach((name, p) -> SimdDifferential.assertBytes(p, b.part(name), what + " and back: " + name));
              }
            }
          }
          assertThrows(IllegalArgumentException.class, () -> resident.repack(Int4Layout.PLAIN));
        }
      }
    }
    CudaDifferential.assertNoLeaks(cuda);
  }

  @ParameterizedTest
  @MethodSource("targets")
  void otherRecipesAndClosedTensorsAreRefused(Target t) {
    CudaBackend cuda = t.backend();
    Random r = new Random(94);
    QuantizedTensor nf4 = quantize(SimdDifferential.random(DType.BF16, 32, 512, r), QuantConfig.of(Recipe.NF4));
    CudaQuantizedTensor resident = cuda.toDevice(nf4);
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> resident.dequantize(DType.BF16));
    assertTrue(e.getMessage().contains("toHost()"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> resident.repack(Int4Layout.CPU));
    resident.close();
    resident.close();
    assertThrows(IllegalStateException.class, resident::toHost);
    CudaDifferential.assertNoLeaks(cuda);
  }
}
