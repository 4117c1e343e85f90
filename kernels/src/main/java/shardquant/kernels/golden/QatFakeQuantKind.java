package shardquant.kernels.golden;

import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.FakeQuantConfig;
import shardquant.kernels.quant.FakeQuantRef;
import shardquant.kernels.quant.MappingType;
import shardquant.kernels.quant.ZeroPointDomain;
import shardquant.kernels.tensor.Tensor;

/**
 * Golden kind {@code qat_fake_quant}: {@code IntxFakeQuantizer(config)} forward on {@code x}, then the
 * backward of {@code grad_out}. The case gives the config as torchao's repr, for example
 * {@code IntxFakeQuantizeConfig(dtype=torch.int4, granularity=PerGroup(group_size=32),
 * mapping_type=<MappingType.SYMMETRIC: 1>, scale_precision=torch.float32, zero_point_precision=torch.int32,
 * zero_point_domain=<ZeroPointDomain.INT: 1>, is_dynamic=True, range_learning=False, eps=None)}.
 */
public final class QatFakeQuantKind implements GoldenKind {
  private static final Pattern FIELD = Pattern.compile("(\\w+)=(<[^>]*>|\\w+\\([^)]*\\)|[^,)]+)");
  private static final Pattern DTYPE = Pattern.compile("torch\\.(u?)int([1-8])");
  private static final Pattern GROUP = Pattern.compile("PerGroup\\(group_size=(\\d+)\\)");
  private static final Pattern ENUM = Pattern.compile("<\\w+\\.(\\w+): \\d+>");

  @Override
  public String kind() {
    return "qat_fake_quant";
  }

  @Override
  public void check(GoldenCase c, GoldenReport r) throws IOException {
    FakeQuantConfig config = parse(c.textParam("config"));
    FakeQuantRef.FakeQuantized fq = FakeQuantRef.forward(c.tensor("x"), config);
    r.exact("y", fq.y());
    r.exact("grad_in", fq.backward(c.tensor("grad_out")));
    r.exact("scale", fq.qparams().scale());
    // The generator stored the quantizer's zero point as float32, whatever its precision.
    r.exact("zero_point", asFloat32(fq.qparams().zeroPoint()));
  }

  /** The FakeQuantConfig of an IntxFakeQuantizeConfig repr; anything else this project does not fake is an error. */
  static FakeQuantConfig parse(String repr) {
    Map<String, String> f = new HashMap<>();
    Matcher m = FIELD.matcher(repr);
    while (m.find()) {
      f.put(m.group(1), m.group(2).trim());
    }
    if (!repr.startsWith("IntxFakeQuantizeConfig(") || !"True".equals(f.get("is_dynamic"))
        || !"False".equals(f.get("range_learning"))) {
      throw new IllegalArgumentException("only dynamic IntxFakeQuantizeConfig without range learning is supported, got " + repr);
    }
    Matcher dtype = DTYPE.matcher(field(f, "dtype", repr));
    if (!dtype.matches()) {
      throw new IllegalArgumentException("unsupported fake quantization dtype in " + repr);
    }
    String granularity = field(f, "granularity", repr);
    Matcher group = GROUP.matcher(granularity);
    FakeQuantConfig.Granularity g;
    int groupSize = 0;
    if (granularity.equals("PerToken()")) {
      g = FakeQuantConfig.Granularity.PER_TOKEN;
    } else if (granularity.equals("PerAxis(axis=0)")) {
      g = FakeQuantConfig.Granularity.PER_CHANNEL;
    } else if (group.matches()) {
      g = FakeQuantConfig.Granularity.PER_GROUP;
      groupSize = Integer.parseInt(group.group(1));
    } else {
      throw new IllegalArgumentException("unsupported granularity '" + granularity + "' in " + repr);
    }
    String eps = field(f, "eps", repr);
    return new FakeQuantConfig(
        Integer.parseInt(dtype.group(2)),
        !dtype.group(1).isEmpty(),
        g,
        groupSize,
        MappingType.valueOf(enumName(field(f, "mapping_type", repr), repr)),
        DType.fromTorchName(field(f, "scale_precision", repr)),
        DType.fromTorchName(field(f, "zero_point_precision", repr)),
        ZeroPointDomain.valueOf(enumName(field(f, "zero_point_domain", repr), repr)),
        eps.equals("None") ? null : Double.valueOf(eps));
  }

  private static String field(Map<String, String> f, String name, String repr) {
    String v = f.get(name);
    if (v == null) {
      throw new IllegalArgumentException("no " + name + " in " + repr);
    }
    return v;
  }

  private static String enumName(String value, String repr) {
    Matcher m = ENUM.matcher(value);
    if (!m.matches()) {
      throw new IllegalArgumentException("cannot read enum '" + value + "' in " + repr);
    }
    return m.group(1);
  }

  private static Tensor asFloat32(Tensor t) {
    return Tensor.fromFloats(DType.F32, t.shape(), t.toFloats());
  }
}
