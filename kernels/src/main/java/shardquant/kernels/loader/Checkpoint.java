package shardquant.kernels.loader;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.QuantizedTensor;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.repack.TinygemmInt4Tensor;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.SafetensorsFormatException;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.tensor.Tensor;

/**
 * A quantized checkpoint opened for reading, with java.nio only (no Spark, no Hadoop): a shardquant
 * output directory ({@code model.safetensors.index.json} and its {@code model-*.safetensors} files, see
 * DESIGN.md "Output checkpoint") or one safetensors file written by shardquant or by torchao's
 * {@code flatten_tensor_state_dict}.
 *
 * <p>Opening reads only the headers. Tensors are listed under their model names with the recipe read
 * back from torchao's metadata; reads memory-map the stored parts, and a row-range read maps only the
 * bytes of those rows ({@link #rowRange}), which equal what quantizing those rows alone gives.
 * {@link #stream()} visits every tensor with one file open at a time.
 */
public final class Checkpoint implements AutoCloseable {
  public static final String INDEX = "model.safetensors.index.json";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Path path;
  private final Map<String, TensorInfo> tensors;
  /** Stored key to the tensor it belongs to, to point a user who asks for a key at the tensor's name. */
  private final Map<String, String> keyOwners;
  private final Map<Path, SafetensorsFile> open = new LinkedHashMap<>();
  private final AtomicLong bytesMapped = new AtomicLong();
  private boolean closed;

  private Checkpoint(Path path, Map<String, TensorInfo> tensors) {
    this.path = path;
    this.tensors = tensors;
    this.keyOwners = new LinkedHashMap<>();
    tensors.values().forEach(t -> t.parts().forEach(p -> keyOwners.put(p.key(), t.name())));
  }

  /** Opens a checkpoint directory (with its index) or a single safetensors file, reading headers only. */
  public static Checkpoint open(Path path) throws IOException {
    if (!Files.isDirectory(path)) {
      Map<String, TensorInfo> tensors = new LinkedHashMap<>();
      readFile(path, tensors);
      return new Checkpoint(path, tensors);
    }
    Path index = path.resolve(INDEX);
    if (!Files.isRegularFile(index)) {
      throw new SafetensorsFormatException(path, null, "directory has no " + INDEX
          + " (not a committed checkpoint); open the directory of a finished job or one .safetensors file");
    }
    JsonNode root;
    try {
      root = JSON.readTree(index.toFile());
    } catch (IOException e) {
      throw new SafetensorsFormatException(index, null, "is not valid JSON: " + e.getMessage());
    }
    JsonNode weightMap = root == null ? null : root.get("weight_map");
    if (weightMap == null || !weightMap.isObject() || weightMap.isEmpty()) {
      throw new SafetensorsFormatException(index, null, "has no weight_map (stored key -> file)");
    }
    TreeSet<String> files = new TreeSet<>();
    weightMap.forEach(f -> files.add(f.asText()));
    Map<String, TensorInfo> tensors = new LinkedHashMap<>();
    Map<String, Path> listed = new LinkedHashMap<>();
    for (String f : files) {
      readFile(path.resolve(f), tensors).forEach(name -> listed.putIfAbsent(name, path.resolve(f)));
    }
    for (Map.Entry<String, Path> l : listed.entrySet()) {
      if (!tensors.containsKey(l.getKey())) {
        throw new SafetensorsFormatException(l.getValue(), l.getKey(), "listed in tensor_names but stored in none of the"
            + " index's files (incomplete checkpoint)");
      }
    }
    for (TensorInfo t : tensors.values()) {
      for (TensorInfo.StoredPart p : t.parts()) {
        String mapped = weightMap.path(p.key()).asText(null);
        if (!t.file().getFileName().toString().equals(mapped)) {
          throw new SafetensorsFormatException(index, t.name(), "weight_map puts '" + p.key() + "' in " + mapped
              + " but it is stored in " + t.file().getFileName() + " (index and files are from different jobs?)");
        }
      }
    }
    checkIndexRecipe(index, root.path("metadata"), tensors.values());
    return new Checkpoint(path, tensors);
  }

  /**
   * Adds the tensors {@code file} stores to {@code into} and returns every name its {@code tensor_names}
   * lists: the whole model's where the file carries the whole model's metadata, as transformers writes it.
   */
  private static List<String> readFile(Path file, Map<String, TensorInfo> into) throws IOException {
    Map<String, TensorEntry> entries = new LinkedHashMap<>();
    Map<String, String> metadata;
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      f.entries().forEach(e -> entries.put(e.name(), e));
      metadata = f.metadata();
    }
    List<String> names = new ArrayList<>();
    String listed = metadata.get("tensor_names");
    if (listed == null) {
      names.addAll(entries.keySet()); // a plain safetensors file: every stored tensor is a model tensor
    } else {
      JsonNode n = JSON.readTree(listed);
      if (n == null || !n.isArray()) {
        throw new SafetensorsFormatException(file, null, "metadata 'tensor_names' is not a JSON list of names");
      }
      n.forEach(x -> names.add(x.asText()));
    }
    for (String name : names) {
      if (!RecipeInference.storedIn(file, name, metadata.get(name), entries)) {
        continue;
      }
      TensorInfo t = RecipeInference.describe(file, name, metadata.get(name), entries);
      TensorInfo earlier = into.put(name, t);
      if (earlier != null) {
        throw new SafetensorsFormatException(file, name, "also stored in " + earlier.file().getFileName());
      }
    }
    return names;
  }

  /** The index's recipe, when it names one, must be every quantized tensor's. */
  private static void checkIndexRecipe(Path index, JsonNode meta, Iterable<TensorInfo> tensors)
      throws SafetensorsFormatException {
    if (!meta.has("recipe")) {
      return;
    }
    QuantConfig said;
    try {
      said = new QuantConfig(Recipe.fromCliName(meta.path("recipe").asText()), meta.path("group_size").asInt(),
          meta.path("bits").asInt());
    } catch (IllegalArgumentException e) {
      throw new SafetensorsFormatException(index, null, "metadata names no valid recipe: " + e.getMessage());
    }
    for (TensorInfo t : tensors) {
      if (t.config() != null && !t.config().equals(said)) {
        throw new SafetensorsFormatException(index, t.name(), "index says recipe " + said + " but the tensor's metadata in "
            + t.file().getFileName() + " says " + t.config());
      }
    }
  }

  /** The directory or file opened. */
  public Path path() {
    return path;
  }

  /** Every tensor under its model name, in file order and each file's {@code tensor_names} order. */
  public List<TensorInfo> tensors() {
    return List.copyOf(tensors.values());
  }

  public TensorInfo tensor(String name) {
    TensorInfo t = tensors.get(name);
    if (t != null) {
      return t;
    }
    String owner = keyOwners.get(name);
    throw new IllegalArgumentException(path + ": no tensor '" + name + "' in this checkpoint"
        + (owner != null ? "; '" + name + "' is a stored part of tensor '" + owner + "', ask for that name"
            : " (it holds " + tensors.size() + " tensors, such as " + tensors.keySet().stream().limit(3).toList() + ")"));
  }

  /** Bytes memory-mapped by this checkpoint's reads and streams so far: what a read costs in I/O at most. */
  public long bytesMapped() {
    return bytesMapped.get();
  }

  /** A quantized tensor's parts, memory-mapped whole. */
  public QuantizedTensor readQuantized(String name) throws IOException {
    TensorInfo t = quantized(name);
    return read(file(t), t, rowRange(name, 0, t.rows()));
  }

  /** A plain tensor's stored bytes as they are, memory-mapped. */
  public Tensor readPlain(String name) throws IOException {
    TensorInfo t = plainInfo(name);
    return readPlain(file(t), t);
  }

  /** The tensor's values in {@code out} (float32 or bfloat16...): dequantized, or a plain tensor converted. */
  public Tensor dequantize(String name, DType out) throws IOException {
    TensorInfo t = tensor(name);
    if (t.plainInt4()) {
      SafetensorsFile f = file(t);
      Map<String, Tensor> parts = new LinkedHashMap<>();
      for (TensorInfo.StoredPart p : t.parts()) {
        Tensor v = f.read(p.key());
        bytesMapped.addAndGet(v.byteSize());
        parts.put(p.dataName(), v);
      }
      return new TinygemmInt4Tensor(Int4Layout.PLAIN, t.int4GroupSize(), t.shape(), parts).dequantize(out);
    }
    return t.quantized() ? readQuantized(name).dequantize(out) : convert(t, readPlain(name), out);
  }

  /**
   * What reading rows [from, to) of a quantized tensor maps, without reading: the covering aligned
   * range and each part's byte runs.
   */
  public RowRange rowRange(String name, long from, long to) {
    TensorInfo t = quantized(name);
    checkRows(t, from, to);
    return RowRange.plan(t, from, to);
  }

  /**
   * Rows [from, to) of a quantized tensor, mapping only their bytes; the parts equal those of quantizing
   * those rows alone. The range must lie on the recipe's row alignment ({@code to} may be the row
   * count); for any other range use {@link #dequantizeRows}.
   */
  public QuantizedTensor readRows(String name, long from, long to) throws IOException {
    RowRange r = rowRange(name, from, to);
    TensorInfo t = tensor(name);
    if (!r.aligned()) {
      throw new IllegalArgumentException(t.file() + ": tensor '" + name + "': rows [" + from + ", " + to + ") do not lie on "
          + t.config() + "'s row alignment of " + t.config().recipe().kernel().rowAlignment(t.shape()[1], t.config())
          + " rows; read the covering rows [" + r.alignedFrom() + ", " + r.alignedTo() + ") or use dequantizeRows");
    }
    return read(file(t), t, r);
  }

  /**
   * Rows [from, to) of any 2-D or 1-D tensor as values in {@code out}: for a quantized tensor, the
   * covering aligned rows are read and dequantized and the result cropped.
   */
  public Tensor dequantizeRows(String name, long from, long to, DType out) throws IOException {
    TensorInfo t = tensor(name);
    checkRows(t, from, to);
    if (!t.quantized()) {
      TensorInfo.StoredPart p = t.parts().get(0);
      SafetensorsFile f = file(t);
      Tensor rows = f.readRows(p.key(), from, to);
      bytesMapped.addAndGet(rows.byteSize());
      return convert(t, rows, out);
    }
    RowRange r = RowRange.plan(t, from, to);
    return read(file(t), t, r).dequantize(out).rowSlice(from - r.alignedFrom(), to - r.alignedFrom());
  }

  /**
   * Every tensor in order, each mapped when the stream reaches it; one file is open at a time and is
   * closed when the stream moves past it or is closed. Use with try-with-resources.
   */
  public Stream<LoadedTensor> stream() {
    requireOpen();
    FileWalk walk = new FileWalk();
    return StreamSupport.stream(Spliterators.spliterator(walk, tensors.size(), Spliterator.ORDERED | Spliterator.NONNULL),
        false).onClose(walk::close);
  }

  /** Closes the files reads opened; views already returned stay valid. Safe to call twice. */
  @Override
  public synchronized void close() throws IOException {
    closed = true;
    IOException first = null;
    for (SafetensorsFile f : open.values()) {
      try {
        f.close();
      } catch (IOException e) {
        first = first == null ? e : first;
      }
    }
    open.clear();
    if (first != null) {
      throw first;
    }
  }

  static Tensor convert(TensorInfo t, Tensor values, DType out) {
    if (values.dtype() == out) {
      return values;
    }
    if (!values.dtype().quantizable() || !out.quantizable()) {
      throw new IllegalArgumentException(t.file() + ": tensor '" + t.name() + "' is " + values.dtype().torchName()
          + "; only float32, bfloat16 and float16 tensors convert to " + out.torchName() + " (read it with readPlain)");
    }
    return Tensor.fromFloats(out, values.shape(), values.toFloats());
  }

  private TensorInfo quantized(String name) {
    TensorInfo t = tensor(name);
    if (!t.quantized()) {
      throw new IllegalArgumentException(t.file() + ": tensor '" + name + "' is stored in high precision, not quantized;"
          + " read it with readPlain or dequantizeRows");
    }
    refusePlainInt4(t);
    return t;
  }

  /** The plain int4 form is no recipe's: only {@link #dequantize} reads it here. */
  private static void refusePlainInt4(TensorInfo t) {
    if (t.plainInt4()) {
      throw new IllegalArgumentException(t.file() + ": tensor '" + t.name() + "' is in shardquant's plain int4 form ("
          + Int4Layout.PLAIN_TYPE + "), which no recipe reads; use dequantize, or repack it with --layout tile-packed or cpu");
    }
  }

  private TensorInfo plainInfo(String name) {
    TensorInfo t = tensor(name);
    if (t.quantized()) {
      throw new IllegalArgumentException(t.file() + ": tensor '" + name + "' is quantized (" + t.recipeName()
          + "); read it with readQuantized, readRows or dequantize");
    }
    return t;
  }

  private static void checkRows(TensorInfo t, long from, long to) {
    long rows = t.rows();
    if (from < 0 || to > rows || from >= to) {
      throw new IllegalArgumentException(t.file() + ": tensor '" + t.name() + "' " + Arrays.toString(t.shape())
          + ": rows [" + from + ", " + to + ") are not a non-empty range within [0, " + rows + ")");
    }
  }

  private synchronized SafetensorsFile file(TensorInfo t) throws IOException {
    requireOpen();
    SafetensorsFile f = open.get(t.file());
    if (f == null) {
      f = SafetensorsFile.open(t.file());
      open.put(t.file(), f);
    }
    return f;
  }

  private void requireOpen() {
    if (closed) {
      throw new IllegalStateException(path + ": checkpoint is closed");
    }
  }

  private Tensor readPlain(SafetensorsFile f, TensorInfo t) throws IOException {
    Tensor v = f.read(t.parts().get(0).key());
    bytesMapped.addAndGet(v.byteSize());
    return v;
  }

  /** Maps each part's runs: a view when a part is one run, else the runs gathered into one buffer. */
  private QuantizedTensor read(SafetensorsFile f, TensorInfo t, RowRange r) throws IOException {
    Map<String, Tensor> parts = new LinkedHashMap<>();
    for (RowRange.PartRuns p : r.parts()) {
      ByteBuffer bytes;
      if (p.runs().size() == 1) {
        bytes = map(f, p.key(), p.runs().get(0));
      } else {
        if (p.byteCount() > Integer.MAX_VALUE) {
          throw new IllegalArgumentException(t.file() + ": tensor '" + t.name() + "': part " + p.key() + " of rows ["
              + r.alignedFrom() + ", " + r.alignedTo() + ") is " + p.byteCount() + " bytes, over one buffer's 2 GiB;"
              + " read fewer rows at a time");
        }
        bytes = ByteBuffer.allocate((int) p.byteCount()).order(ByteOrder.LITTLE_ENDIAN);
        for (RowRange.ByteRun run : p.runs()) {
          bytes.put(map(f, p.key(), run));
        }
        bytes.flip();
      }
      parts.put(p.spec().name(), Tensor.of(p.spec().dtype(), p.spec().shape(), bytes));
    }
    long[] shape = t.shape();
    shape[0] = r.alignedTo() - r.alignedFrom();
    return new QuantizedTensor(t.config(), shape, t.dtype(), parts);
  }

  private ByteBuffer map(SafetensorsFile f, String key, RowRange.ByteRun run) throws IOException {
    ByteBuffer b = f.readBytes(key, run.offset(), run.length());
    bytesMapped.addAndGet(run.length());
    return b;
  }

  /** The stream's walk over the tensors: opens each file when it reaches it and closes it when done. */
  private final class FileWalk implements Iterator<LoadedTensor> {
    private final Iterator<TensorInfo> next = tensors.values().iterator();
    private SafetensorsFile current;

    @Override
    public boolean hasNext() {
      if (next.hasNext()) {
        return true;
      }
      close();
      return false;
    }

    @Override
    public LoadedTensor next() {
      if (!hasNext()) {
        throw new NoSuchElementException();
      }
      requireOpen();
      TensorInfo t = next.next();
      refusePlainInt4(t);
      try {
        if (current == null || !current.path().equals(t.file())) {
          close();
          current = SafetensorsFile.open(t.file());
        }
        return t.quantized()
            ? new LoadedTensor(t, read(current, t, RowRange.plan(t, 0, t.rows())), null)
            : new LoadedTensor(t, null, readPlain(current, t));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }

    void close() {
      if (current != null) {
        try {
          current.close();
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        } finally {
          current = null;
        }
      }
    }
  }
}
