package shardquant.kernels.backend.cuda;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import shardquant.kernels.backend.Backend;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.GlobalStats;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.repack.TinygemmInt4Tensor;
import shardquant.kernels.safetensors.SafetensorsWriter;
import shardquant.kernels.select.Backends;
import shardquant.kernels.tensor.SyntheticWeights;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/**
 * Writes what tools/torch_check.py feeds to PyTorch's own int4 ops on a GPU machine: a bf16
 * weight quantized with int4-tile-packed and int4-cpu (group 128) by backend {@code auto} (CUDA there),
 * its codes (plain layout) and its dequantization by the reference. Usage: {@code TorchCheckExport FILE}.
 */
public final class TorchCheckExport {
  private TorchCheckExport() {}

  public static void main(String[] args) throws IOException {
    Backend b = Backends.forName("auto");
    Tensor w = SyntheticWeights.directBf16(7, "torch.check.weight", 256, 1024);
    QuantConfig tile = new QuantConfig(Recipe.INT4_TILE_PACKED, 128, 4);
    QuantizedTensor qt = b.quantize(w, tile, GlobalStats.NONE, new QuantStats());
    QuantizedTensor qc = b.quantize(w, new QuantConfig(Recipe.INT4_CPU, 128, 4), GlobalStats.NONE, new QuantStats());
    TinygemmInt4Tensor plain = TinygemmInt4Tensor.of(qt).repack(Int4Layout.PLAIN);
    Map<String, Tensor> out = new LinkedHashMap<>();
    out.put("w", w);
    out.put("tile_qdata", qt.part("qdata"));
    out.put("scale_and_zero", qt.part("scale_and_zero"));
    out.put("cpu_qdata", qc.part("qdata"));
    out.put("codes_minus_8", plain.part("qdata"));
    out.put("dq", qt.dequantize(DType.BF16));
    SafetensorsWriter.write(Path.of(args[0]), out, Map.of("backend", b.nameFor(Recipe.INT4_TILE_PACKED), "group_size", "128"));
    System.out.println("wrote " + args[0] + " (quantized on " + b.nameFor(Recipe.INT4_TILE_PACKED) + ")");
  }
}
