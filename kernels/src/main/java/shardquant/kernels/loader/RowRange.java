package shardquant.kernels.loader;

import java.util.ArrayList;
import java.util.List;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.RecipeKernel;
import shardquant.kernels.quant.TorchaoMetadata;

/**
 * What reading rows [from, to) of a quantized tensor maps: the covering range [alignedFrom, alignedTo)
 * on the recipe's row alignment, and for each stored part the shape it has for those rows and the byte
 * runs of the stored part that hold them. Quantizing a row shard gives that slice of the whole
 * tensor's parts (DESIGN.md, "FSDP-style composability"), so a part growing along dimension d is, in
 * the stored bytes, one run per index of the dimensions before d; a replicated part is read whole.
 */
public record RowRange(String tensor, long from, long to, long alignedFrom, long alignedTo, List<PartRuns> parts) {
  /** {@code length} bytes at {@code offset} of a stored tensor's data. */
  public record ByteRun(long offset, long length) {}

  /** One part of the rows read: its spec (shape for those rows) and where its bytes lie in stored tensor {@code key}. */
  public record PartRuns(PartSpec spec, String key, List<ByteRun> runs) {
    public PartRuns {
      runs = List.copyOf(runs);
    }

    public long byteCount() {
      return runs.stream().mapToLong(ByteRun::length).sum();
    }
  }

  public RowRange {
    parts = List.copyOf(parts);
  }

  /** Whether [from, to) is itself aligned, so {@link Checkpoint#readRows} can return it. */
  public boolean aligned() {
    return from == alignedFrom && to == alignedTo;
  }

  /** Bytes a read of this range maps, over all parts. */
  public long byteCount() {
    return parts.stream().mapToLong(PartRuns::byteCount).sum();
  }

  /** Plans rows [from, to) of {@code t}; the caller has checked 0 <= from < to <= rows. */
  static RowRange plan(TensorInfo t, long from, long to) {
    QuantConfig c = t.config();
    RecipeKernel k = c.recipe().kernel();
    long rows = t.shape()[0];
    long cols = t.shape()[1];
    long align = k.rowAlignment(cols, c);
    long a = from / align * align;
    long b = Math.min(rows, (to + align - 1) / align * align);
    List<PartSpec> whole = k.parts(rows, cols, t.dtype(), c);
    List<PartSpec> range = k.parts(b - a, cols, t.dtype(), c);
    // The rows before a are a shard of their own, so their parts' extent along the row dimension is
    // where the range's parts start.
    List<PartSpec> before = a == 0 ? null : k.parts(a, cols, t.dtype(), c);
    List<PartRuns> parts = new ArrayList<>();
    for (int i = 0; i < whole.size(); i++) {
      PartSpec spec = range.get(i);
      long[] w = whole.get(i).shape();
      long elementBytes = spec.dtype().byteSize();
      List<ByteRun> runs = new ArrayList<>();
      if (spec.rowDim() == PartSpec.REPLICATED) {
        runs.add(new ByteRun(0, product(w, 0, w.length) * elementBytes));
      } else {
        int d = spec.rowDim();
        long[] s = spec.shape();
        for (int j = 0; j < w.length; j++) {
          if (j != d && s[j] != w[j]) {
            throw new IllegalStateException(c + ": part " + spec + " of rows [" + a + ", " + b + ") does not slice "
                + whole.get(i) + " along dimension " + d);
          }
        }
        long start = before == null ? 0 : before.get(i).shape()[d];
        long inner = product(w, d + 1, w.length) * elementBytes;
        long outer = product(w, 0, d);
        for (long o = 0; o < outer; o++) {
          add(runs, new ByteRun((o * w[d] + start) * inner, s[d] * inner));
        }
      }
      parts.add(new PartRuns(spec, TorchaoMetadata.storedKey(t.name(), spec.name()), runs));
    }
    return new RowRange(t.name(), from, to, a, b, parts);
  }

  /** Appends a run, merging it with the previous one when they touch (a whole-tensor read is one run). */
  private static void add(List<ByteRun> runs, ByteRun r) {
    int last = runs.size() - 1;
    if (last >= 0 && runs.get(last).offset() + runs.get(last).length() == r.offset()) {
      runs.set(last, new ByteRun(runs.get(last).offset(), runs.get(last).length() + r.length()));
    } else {
      runs.add(r);
    }
  }

  private static long product(long[] shape, int from, int to) {
    long p = 1;
    for (int i = from; i < to; i++) {
      p = Math.multiplyExact(p, shape[i]);
    }
    return p;
  }
}
