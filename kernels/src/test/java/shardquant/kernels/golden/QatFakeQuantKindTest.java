package shardquant.kernels.golden;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.FakeQuantConfig;
import shardquant.kernels.quant.FakeQuantConfig.Granularity;
import shardquant.kernels.quant.MappingType;
import shardquant.kernels.quant.ZeroPointDomain;

class QatFakeQuantKindTest {
  private static String repr(String dtype, String granularity, String mapping, String zeroDomain, String tail) {
    return "IntxFakeQuantizeConfig(dtype=torch." + dtype + ", granularity=" + granularity + ", mapping_type=<MappingType."
        + mapping + ": 1>, scale_precision=torch.float32, zero_point_precision=torch.int32, zero_point_domain=<ZeroPointDomain."
        + zeroDomain + ": 2>, " + tail + ")";
  }

  private static final String DYNAMIC = "is_dynamic=True, range_learning=False, eps=None";

  @Test
  void parsesTheGoldenConfigs() {
    assertEquals(new FakeQuantConfig(4, false, Granularity.PER_GROUP, 32, MappingType.SYMMETRIC, DType.F32, DType.I32,
            ZeroPointDomain.INT, null),
        QatFakeQuantKind.parse(repr("int4", "PerGroup(group_size=32)", "SYMMETRIC", "INT", DYNAMIC)));
    assertEquals(new FakeQuantConfig(4, true, Granularity.PER_GROUP, 128, MappingType.ASYMMETRIC, DType.F32, DType.I32,
            ZeroPointDomain.FLOAT, null),
        QatFakeQuantKind.parse(repr("uint4", "PerGroup(group_size=128)", "ASYMMETRIC", "FLOAT", DYNAMIC)));
    assertEquals(new FakeQuantConfig(8, false, Granularity.PER_TOKEN, 0, MappingType.ASYMMETRIC, DType.F32, DType.I32,
            ZeroPointDomain.INT, null),
        QatFakeQuantKind.parse(repr("int8", "PerToken()", "ASYMMETRIC", "INT", DYNAMIC)));
    assertEquals(new FakeQuantConfig(8, false, Granularity.PER_CHANNEL, 0, MappingType.SYMMETRIC, DType.F32, DType.I32,
            ZeroPointDomain.INT, 1e-5),
        QatFakeQuantKind.parse(repr("int8", "PerAxis(axis=0)", "SYMMETRIC", "INT",
            "is_dynamic=True, range_learning=False, eps=1e-05")));
  }

  @Test
  void refusesWhatItDoesNotFake() {
    assertRefused("only dynamic", repr("int4", "PerGroup(group_size=32)", "SYMMETRIC", "INT",
        "is_dynamic=True, range_learning=True, eps=None"));
    assertRefused("only dynamic", repr("int4", "PerGroup(group_size=32)", "SYMMETRIC", "INT",
        "is_dynamic=False, range_learning=False, eps=None"));
    assertRefused("unsupported fake quantization dtype", repr("float8_e4m3fn", "PerToken()", "ASYMMETRIC", "INT", DYNAMIC));
    assertRefused("unsupported granularity 'PerAxis(axis=1)'", repr("int4", "PerAxis(axis=1)", "SYMMETRIC", "INT", DYNAMIC));
    assertRefused("only dynamic IntxFakeQuantizeConfig", "Float8FakeQuantizeConfig(dtype=torch.float8_e4m3fn)");
  }

  private static void assertRefused(String expected, String repr) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> QatFakeQuantKind.parse(repr));
    assertTrue(e.getMessage().contains(expected), "message '" + e.getMessage() + "' lacks '" + expected + "'");
  }
}
