package shardquant.kernels.quant;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.tensor.Tensor;
import shardquant.kernels.verify.QuantStats;

/** Quantizes a tensor shard by shard and joins the shards' parts as an assembler would. */
public final class RowShards {
  private RowShards() {}

  /** Quantizes rows in shards of {@code shardRows} (the last may be shorter) and concatenates every part. */
  public static Map<String, Tensor> quantizeInShards(Tensor w, QuantConfig c, GlobalStats global, long shardRows,
      QuantStats stats) {
    RecipeKernel k = c.recipe().kernel();
    List<QuantizedTensor> shards = new ArrayList<>();
    for (long r = 0; r < w.rows(); r += shardRows) {
      shards.add(k.quantize(w.rowSlice(r, Math.min(w.rows(), r + shardRows)), c, global, stats));
    }
    List<PartSpec> specs = k.parts(w.rows(), w.cols(), w.dtype(), c);
    Map<String, Tensor> joined = new LinkedHashMap<>();
    for (PartSpec spec : specs) {
      List<Tensor> pieces = new ArrayList<>();
      shards.forEach(s -> pieces.add(s.part(spec.name())));
      joined.put(spec.name(), spec.rowDim() == PartSpec.REPLICATED ? pieces.get(0) : concat(pieces, spec.rowDim()));
    }
    return joined;
  }

  /** Concatenates row-major tensors along dimension {@code dim}. */
  public static Tensor concat(List<Tensor> pieces, int dim) {
    Tensor first = pieces.get(0);
    long[] shape = first.shape();
    long outer = 1;
    for (int d = 0; d < dim; d++) {
      outer *= shape[d];
    }
    long total = 0;
    for (Tensor t : pieces) {
      total += t.shape()[dim];
    }
    shape[dim] = total;
    ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(Tensor.numel(shape) * first.dtype().byteSize()));
    for (long o = 0; o < outer; o++) {
      for (Tensor t : pieces) {
        int slab = Math.toIntExact(t.byteSize() / outer);
        out.put(t.bytes().slice(Math.toIntExact(o * slab), slab));
      }
    }
    return Tensor.of(first.dtype(), shape, out.flip());
  }
}
