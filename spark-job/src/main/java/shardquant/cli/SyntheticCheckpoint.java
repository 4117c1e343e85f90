package shardquant.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.LongConsumer;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.safetensors.SafetensorsWriter;
import shardquant.kernels.safetensors.SafetensorsWriter.Declared;
import shardquant.kernels.tensor.SyntheticWeights;
import shardquant.kernels.tensor.Tensor;

/**
 * Writes a Llama-shaped bf16 checkpoint of any size, laid out as Hugging Face shards it
 * ({@code model-0000i-of-0000N.safetensors} plus {@code model.safetensors.index.json}), for the demo,
 * for tests, and for memory tests at sizes no test machine could hold in memory. Beside the weights
 * go the config, generation config and a small tokenizer ({@link LlamaModelFiles}), so transformers'
 * {@code AutoModelForCausalLM} and {@code AutoTokenizer} load the directory as they load a model
 * from the Hub.
 *
 * <p>Values come from {@link SyntheticWeights}: deterministic, each tensor from its own stream, so a
 * tensor's bytes depend on neither the file count nor the other tensors. Weights are approximately
 * normal with standard deviation 0.02; norm weights are 1.0 plus the same noise.
 */
public final class SyntheticCheckpoint {
  /** Elements generated per write: its two buffers (3 MiB) are all the memory a checkpoint of any size takes. */
  private static final int CHUNK_ELEMENTS = 1 << 20;

  private static final ObjectMapper JSON = new ObjectMapper();

  private SyntheticCheckpoint() {}

  /** Llama-like dimensions; {@code hidden / heads} is the head dimension shared by q, k and v. */
  public record Shape(int layers, int hidden, int intermediate, int heads, int kvHeads, int vocab) {
    public Shape {
      if (layers < 1 || hidden < 1 || intermediate < 1 || heads < 1 || kvHeads < 1 || vocab < LlamaModelFiles.MIN_VOCAB
          || hidden % heads != 0 || heads % kvHeads != 0) {
        throw new IllegalArgumentException("bad shape: layers=" + layers + ", hidden=" + hidden + ", intermediate="
            + intermediate + ", heads=" + heads + ", kvHeads=" + kvHeads + ", vocab=" + vocab
            + ": every dimension must be positive, hidden a multiple of heads, heads a multiple of kvHeads and vocab at"
            + " least " + LlamaModelFiles.MIN_VOCAB + " (the tokenizer's special, byte and space tokens)");
      }
    }

    /**
     * Dimensions whose bf16 total is close to {@code approxBytes}: the widest model (hidden a multiple of
     * 256, head dimension 64, 4 query heads per kv head, vocabulary 8·hidden up to 32000) that fits with
     * Llama's proportion of one layer per 128 of hidden, as many layers as then fit, the intermediate
     * size (a multiple of 256, about 3.5·hidden) stretched to take up most of the rest and the
     * vocabulary the remainder: within 2% from 4 MB up. Never smaller than one layer of hidden 256 and a
     * vocabulary of 512 (about 1 MB).
     */
    public static Shape forBytes(long approxBytes) {
      if (approxBytes < 1) {
        throw new IllegalArgumentException("approxBytes must be positive, got " + approxBytes);
      }
      Shape best = proportioned(256, 1);
      for (int hidden = 512; hidden <= 1 << 16; hidden += 256) {
        Shape s = proportioned(hidden, Math.max(1, hidden / 128));
        if (s.totalBytes() > approxBytes) {
          break;
        }
        best = s;
      }
      long fixed = best.fixedBytes();
      int layers = (int) Math.max(1, (approxBytes - fixed) / best.layerBytes());
      long mlpBytesPerColumn = 3L * best.hidden() * DType.BF16.byteSize() * layers; // gate, up and down
      long withoutMlp = fixed + layers * best.layerBytes() - mlpBytesPerColumn * best.intermediate();
      long intermediate = Math.max(256, Math.round((double) (approxBytes - withoutMlp) / mlpBytesPerColumn / 256) * 256);
      Shape sized = new Shape(layers, best.hidden(), (int) intermediate, best.heads(), best.kvHeads(), best.vocab());
      // The vocabulary takes up what intermediate's steps of 256 could not: 256 more rows of both
      // embed_tokens and lm_head is a much finer step.
      long vocabStep = 2L * 256 * best.hidden() * DType.BF16.byteSize();
      long vocab = Math.max(512, best.vocab() + Math.round((double) (approxBytes - sized.totalBytes()) / vocabStep) * 256);
      return new Shape(layers, best.hidden(), (int) intermediate, best.heads(), best.kvHeads(), (int) vocab);
    }

    private static Shape proportioned(int hidden, int layers) {
      int heads = hidden / 64;
      int intermediate = (hidden * 7 / 2 + 255) / 256 * 256;
      return new Shape(layers, hidden, intermediate, heads, Math.max(1, heads / 4), Math.min(32000, 8 * hidden));
    }

    public int headDim() {
      return hidden / heads;
    }

    /** The tensors in file order, as Hugging Face's LlamaForCausalLM names them. */
    public List<Declared> tensors() {
      long h = hidden;
      long kv = (long) kvHeads * headDim();
      List<Declared> out = new ArrayList<>();
      out.add(new Declared("model.embed_tokens.weight", DType.BF16, new long[] {vocab, h}));
      for (int i = 0; i < layers; i++) {
        String p = "model.layers." + i + ".";
        out.add(new Declared(p + "input_layernorm.weight", DType.BF16, new long[] {h}));
        out.add(new Declared(p + "self_attn.q_proj.weight", DType.BF16, new long[] {h, h}));
        out.add(new Declared(p + "self_attn.k_proj.weight", DType.BF16, new long[] {kv, h}));
        out.add(new Declared(p + "self_attn.v_proj.weight", DType.BF16, new long[] {kv, h}));
        out.add(new Declared(p + "self_attn.o_proj.weight", DType.BF16, new long[] {h, h}));
        out.add(new Declared(p + "mlp.gate_proj.weight", DType.BF16, new long[] {intermediate, h}));
        out.add(new Declared(p + "mlp.up_proj.weight", DType.BF16, new long[] {intermediate, h}));
        out.add(new Declared(p + "mlp.down_proj.weight", DType.BF16, new long[] {h, intermediate}));
        out.add(new Declared(p + "post_attention_layernorm.weight", DType.BF16, new long[] {h}));
      }
      out.add(new Declared("model.norm.weight", DType.BF16, new long[] {h}));
      out.add(new Declared("lm_head.weight", DType.BF16, new long[] {vocab, h}));
      return out;
    }

    public long totalBytes() {
      return fixedBytes() + layers * layerBytes();
    }

    /** Embeddings, final norm and lm_head. */
    private long fixedBytes() {
      return DType.BF16.byteSize() * (2L * vocab * hidden + hidden);
    }

    private long layerBytes() {
      long h = hidden;
      long kv = (long) kvHeads * headDim();
      return DType.BF16.byteSize() * (2 * h + 2 * h * h + 2 * kv * h + 3L * intermediate * h);
    }
  }

  /**
   * Writes the checkpoint into {@code dir} (created if missing) and returns it: first the model's config
   * and tokenizer files, then the tensors of {@link Shape#tensors()} split in order over {@code files}
   * files of roughly equal size; each file is committed atomically, and the index is written last, so a
   * directory with an index is complete.
   * {@code progress}, if not null, receives the number of bytes written so far after each chunk.
   */
  public static Path write(Path dir, Shape shape, int files, long seed, LongConsumer progress) throws IOException {
    List<Declared> tensors = shape.tensors();
    if (files < 1 || files > tensors.size()) {
      throw new IllegalArgumentException("files must be between 1 and the " + tensors.size() + " tensors of " + shape
          + ", got " + files);
    }
    Files.createDirectories(dir);
    boolean tiedEmbeddings = tensors.stream().noneMatch(d -> d.name().equals("lm_head.weight"));
    for (Map.Entry<String, byte[]> f : LlamaModelFiles.files(shape, tiedEmbeddings).entrySet()) {
      writeAtomically(dir.resolve(f.getKey()), f.getValue());
    }
    int[] fileOf = assignFiles(tensors, files, shape.totalBytes());
    ObjectNode index = JSON.createObjectNode();
    index.putObject("metadata").put("total_size", shape.totalBytes());
    ObjectNode weightMap = index.putObject("weight_map");
    ByteBuffer chunk = ByteBuffer.allocateDirect(CHUNK_ELEMENTS * 2).order(ByteOrder.LITTLE_ENDIAN);
    short[] values = new short[CHUNK_ELEMENTS];
    long written = 0;
    int first = 0;
    for (int f = 0; f < files; f++) {
      int end = first;
      while (end < tensors.size() && fileOf[end] == f) {
        end++;
      }
      String fileName = String.format("model-%05d-of-%05d.safetensors", f + 1, files);
      List<Declared> inFile = tensors.subList(first, end);
      try (SafetensorsWriter w = SafetensorsWriter.create(dir.resolve(fileName), inFile, Map.of("format", "pt"))) {
        for (Declared d : inFile) {
          weightMap.put(d.name(), fileName);
          SyntheticWeights gen = new SyntheticWeights(seed, d.name(), d.shape().length == 1 ? 1.0f : 0.0f);
          for (long left = Tensor.numel(d.shape()); left > 0; ) {
            int n = (int) Math.min(left, CHUNK_ELEMENTS);
            gen.fill(values, n);
            chunk.clear();
            chunk.asShortBuffer().put(values, 0, n);
            chunk.limit(2 * n);
            w.write(chunk);
            left -= n;
            written += 2L * n;
            if (progress != null) {
              progress.accept(written);
            }
          }
        }
        w.commit();
      }
      first = end;
    }
    writeAtomically(dir.resolve("model.safetensors.index.json"), JSON.writeValueAsString(index).getBytes(StandardCharsets.UTF_8));
    return dir;
  }

  /** Writes a hidden temporary file beside {@code target} and renames it into place. */
  private static void writeAtomically(Path target, byte[] contents) throws IOException {
    Path temp = target.resolveSibling("." + target.getFileName() + ".tmp");
    Files.write(temp, contents);
    try {
      Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING);
    }
  }

  /**
   * The file of each tensor: in order, moving to the next file once this one holds its share of the
   * bytes, or when each remaining file needs one of the remaining tensors.
   */
  private static int[] assignFiles(List<Declared> tensors, int files, long totalBytes) {
    int[] fileOf = new int[tensors.size()];
    int f = 0;
    long cumulative = 0;
    for (int i = 0; i < tensors.size(); i++) {
      fileOf[i] = f;
      cumulative += tensors.get(i).byteSize();
      int tensorsLeft = tensors.size() - i - 1;
      int filesLeft = files - f - 1;
      if (filesLeft > 0 && (cumulative * files >= (f + 1) * totalBytes || tensorsLeft == filesLeft)) {
        f++;
      }
    }
    return fileOf;
  }
}
