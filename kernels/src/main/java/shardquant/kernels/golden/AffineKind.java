package shardquant.kernels.golden;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.AffineQuantRef;
import shardquant.kernels.quant.AffineSpec;
import shardquant.kernels.quant.BlockSize;
import shardquant.kernels.quant.MappingType;
import shardquant.kernels.quant.QParams;
import shardquant.kernels.quant.ZeroPointDomain;
import shardquant.kernels.tensor.Tensor;

/**
 * Golden kind {@code affine}: torchao's choose_qparams_affine, quantize_affine and dequantize_affine
 * on {@code w} with the case's mapping, block_size, quant range, eps and dtypes (INT zero point
 * domain); dq is dequantized into the input's dtype.
 */
public final class AffineKind implements GoldenKind {
  @Override
  public String kind() {
    return "affine";
  }

  @Override
  public void check(GoldenCase c, GoldenReport r) throws IOException {
    JsonNode p = c.params();
    JsonNode block = p.path("block_size");
    if (!block.isArray() || block.size() != 2) {
      throw new IllegalArgumentException(c.file() + ": block_size must be a list of 2, got " + block);
    }
    AffineSpec spec = new AffineSpec(
        MappingType.valueOf(c.textParam("mapping")),
        new BlockSize(block.get(0).intValue(), block.get(1).intValue()),
        DType.fromTorchName(c.textParam("target_dtype")),
        c.intParam("quant_min"),
        c.intParam("quant_max"),
        p.path("eps").doubleValue(),
        DType.fromTorchName(c.textParam("scale_dtype")),
        DType.fromTorchName(c.textParam("zero_point_dtype")),
        ZeroPointDomain.INT);
    Tensor w = c.tensor("w");
    if (w.dtype() != DType.fromTorchName(c.textParam("input_dtype"))) {
      throw new IllegalArgumentException(c.file() + ": w is " + w + " but input_dtype is " + c.textParam("input_dtype"));
    }
    QParams qparams = AffineQuantRef.chooseQParams(w, spec);
    Tensor q = AffineQuantRef.quantize(w, spec, qparams);
    r.exact("scale", qparams.scale());
    r.exact("zero_point", qparams.zeroPoint());
    r.exact("q", q);
    r.exact("dq", AffineQuantRef.dequantize(q, spec, qparams, w.dtype()));
  }
}
