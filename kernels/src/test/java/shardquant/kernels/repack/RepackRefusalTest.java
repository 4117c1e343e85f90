package shardquant.kernels.repack;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.RecipeShardingTest;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** What repack will not do, each with a message that names the tensor, the values and the way out; and the plain metadata. */
class RepackRefusalTest {
  private static TinygemmInt4Tensor tilePacked(int n, int k, int g) {
    QuantConfig c = new QuantConfig(Recipe.INT4_TILE_PACKED, g, 4);
    return TinygemmInt4Tensor.of(c.recipe().kernel().quantize(RecipeShardingTest.weights(n, k, DType.BF16, n + k), c,
        GlobalStats.NONE, new QuantStats()));
  }

  private static void assertRefused(Executable e, String... fragments) {
    String message = assertThrows(IllegalArgumentException.class, e).getMessage();
    for (String f : fragments) {
      assertTrue(message.contains(f), "'" + f + "' missing from: " + message);
    }
  }

  @Test
  void cpuLayoutNeedsNMultipleOf16() {
    TinygemmInt4Tensor t = tilePacked(100, 256, 64);
    assertTrue(t.refusal(Int4Layout.CPU).contains("N = 100"), t.refusal(Int4Layout.CPU));
    assertNull(t.refusal(Int4Layout.PLAIN));
    assertRefused(() -> t.repack(Int4Layout.CPU), "[100, 256]", "N % 16 == 0", "N = 100", "keep this tensor");
  }

  @Test
  void wholeGroupsOnlyOutsideTilePacked() {
    TinygemmInt4Tensor t = tilePacked(16, 100, 32);
    assertRefused(() -> t.repack(Int4Layout.PLAIN), "K % 32 == 0", "K = 100", "keep this tensor tile-packed");
    assertRefused(() -> t.repack(Int4Layout.CPU), "K % 32 == 0", "K = 100");
  }

  @Test
  void paddingThatIsNotZeroPaddingCannotBeDropped() {
    TinygemmInt4Tensor t = tilePacked(100, 256, 64);
    // scale_and_zero [1024/64][104][2]: group 15 of row 0 lies wholly in the K padding.
    Tensor sz = copy(t.part("scale_and_zero"));
    sz.setFloat(2 * (15 * 104), 1.0f);
    assertRefused(() -> withPart(t, "scale_and_zero", sz).repack(Int4Layout.PLAIN), "scale 0x3f80 of group [0][15]",
        "zero padding", "tile-packed layout");
    // qdata [13][8][32][4]: k super-tile 7 holds columns 896..1023, all padding.
    Tensor qdata = copy(t.part("qdata"));
    qdata.setInt(7 * 32 * 4, qdata.getInt(7 * 32 * 4) ^ 1);
    assertRefused(() -> withPart(t, "qdata", qdata).repack(Int4Layout.PLAIN), "at [0][896]", "zero padding");
  }

  @Test
  void partsMustMatchTheLayout() {
    TinygemmInt4Tensor plain = tilePacked(16, 256, 64).repack(Int4Layout.PLAIN);
    Tensor q = copy(plain.part("qdata"));
    q.setInt(3, 8);
    assertRefused(() -> withPart(plain, "qdata", q).repack(Int4Layout.CPU), "qdata 8 at [0][3]", "-8..7");
    TinygemmInt4Tensor cpu = plain.repack(Int4Layout.CPU);
    assertRefused(() -> withPart(cpu, "qdata", Tensor.allocate(DType.U8, 16, 256)).repack(Int4Layout.PLAIN),
        "part qdata must be qdata uint8[16, 128]", "got uint8[16, 256]");
    assertRefused(() -> new TinygemmInt4Tensor(Int4Layout.PLAIN, 64, plain.shape(), cpu.parts()),
        "plain layout stores [qdata, scale, zero_point]");
    assertRefused(() -> new TinygemmInt4Tensor(Int4Layout.PLAIN, 48, plain.shape(), plain.parts()), "48");
  }

  @Test
  void onlyTinygemmRecipesRepack() {
    QuantConfig c = QuantConfig.of(Recipe.INT8_DYN_ACT_INT4_WEIGHT);
    QuantizedTensor q = c.recipe().kernel().quantize(RecipeShardingTest.weights(8, 64, DType.BF16, 1), c,
        GlobalStats.NONE, new QuantStats());
    assertRefused(() -> TinygemmInt4Tensor.of(q), "int4-tile-packed and int4-cpu", "8da4w");
    assertEquals(Int4Layout.CPU, Int4Layout.fromCliName("cpu"));
    assertRefused(() -> Int4Layout.fromCliName("tiled"), "'tiled'", "[tile-packed, cpu, plain]");
    assertThrows(IllegalStateException.class, () -> tilePacked(8, 64, 32).repack(Int4Layout.PLAIN).toQuantized());
  }

  /** The plain form's metadata, byte for byte: a type no torchao loader mistakes for its own, and what it holds. */
  @Test
  void plainMetadataSaysWhatItIs() {
    assertEquals("{\"_type\": \"shardquant.Int4TinygemmUnpackedTensor\", \"_data\": {\"target_dtype\": {\"_type\": "
        + "\"torch.dtype\", \"_data\": \"int4\"}, \"block_size\": [1, 64], \"dtype\": {\"_type\": \"torch.dtype\", "
        + "\"_data\": \"bfloat16\"}, \"quant_min\": -8, \"quant_max\": 7, \"zero_point_domain\": {\"_type\": "
        + "\"ZeroPointDomain\", \"_data\": \"FLOAT\"}}, \"_tensor_data_names\": [\"qdata\", \"scale\", \"zero_point\"]}",
        tilePacked(16, 256, 64).repack(Int4Layout.PLAIN).torchaoMetadata());
  }

  private static Tensor copy(Tensor t) {
    ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(t.byteSize()));
    b.put(t.bytes());
    return Tensor.of(t.dtype(), t.shape(), b.flip());
  }

  private static TinygemmInt4Tensor withPart(TinygemmInt4Tensor t, String name, Tensor part) {
    Map<String, Tensor> parts = new LinkedHashMap<>(t.parts());
    parts.put(name, part);
    return new TinygemmInt4Tensor(t.layout(), t.groupSize(), t.shape(), parts);
  }
}
