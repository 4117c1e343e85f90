package shardquant.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectWriter;
import com.fasterxml.jackson.databind.cfg.JsonNodeFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.util.RawValue;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;

/**
 * The files besides the weights that make a synthetic checkpoint a Hugging Face Llama model directory:
 * {@code config.json} and {@code generation_config.json} as transformers 5.18 writes them for
 * {@code LlamaForCausalLM} (compare {@code shared/golden/transformers-5.18/input/}), and a small real
 * tokenizer in the layout of Llama 2's, which transformers' {@code LlamaTokenizer} rebuilds to the same
 * tokenizer it reads from {@code tokenizer.json}.
 *
 * <p>The tokenizer: ids 0-2 are {@code <unk>}, {@code <s>}, {@code </s>}; 3-258 the byte-fallback tokens
 * {@code <0x00>}..{@code <0xFF>}, so any text encodes and decodes exactly; then {@code ▁} (SentencePiece's
 * space) and the printable ASCII characters; then one BPE merge per token on the way to each of
 * {@code WORDS} with its leading space ({@code ▁t}, {@code ▁th}, {@code ▁the}). It takes the first
 * {@code vocab} of those tokens, so it never has more ids than the model's embedding rows, and at most
 * {@link #fullTokenizerSize()} (565, a 23 KB file) however large the model's vocabulary: transformers
 * allows a vocab_size above the tokenizer's size, and the rows past it are never looked up.
 */
final class LlamaModelFiles {
  static final int UNK_ID = 0;
  static final int BOS_ID = 1;
  static final int EOS_ID = 2;
  static final String[] SPECIAL_TOKENS = {"<unk>", "<s>", "</s>"};
  /**
   * The smallest vocabulary the tokenizer fits in: the special tokens, the 256 byte tokens and {@code ▁}
   * (without it a space would travel as the bytes of {@code ▁}, which the decoder does not turn back).
   */
  static final int MIN_VOCAB = SPECIAL_TOKENS.length + 256 + 1;
  static final int MAX_POSITIONS = 2048;
  /** The transformers release whose files these follow (the key set and formatting of its save_pretrained). */
  static final String TRANSFORMERS_VERSION = "5.18.0";
  private static final String SPACE = "\u2581";
  /** The words whose merges the tokenizer holds: the first 100 words of Fry's list of common English words. */
  private static final String WORDS = "the of and a to in is you that it he was for on are as with his they I at be this "
      + "have from or one had by words but not what all were we when your can said there use an each which she do how "
      + "their if will up other about out many then them these so some her would make like him into time has look two "
      + "more write go see number no way could people my than first water been call who oil its now find long down day "
      + "did get come made may part";
  private static final List<String> ALL_TOKENS = allTokens();

  /**
   * The layout of Python's {@code json.dumps(obj, indent=2)}, in which transformers writes its JSON files
   * (and the tokenizers library its tokenizer.json, through serde_json's pretty printer): two-space
   * indents, {@code "key": value}, one array element per line, {@code {}} and {@code []} when empty.
   */
  private static final DefaultPrettyPrinter PYTHON_LAYOUT = new DefaultPrettyPrinter(Separators.createDefaultInstance()
      .withObjectFieldValueSpacing(Separators.Spacing.AFTER).withObjectEmptySeparator("").withArrayEmptySeparator(""))
      .withObjectIndenter(new DefaultIndenter("  ", "\n")).withArrayIndenter(new DefaultIndenter("  ", "\n"));
  private static final ObjectMapper JSON = new ObjectMapper();
  /** transformers writes with {@code sort_keys=True}. */
  private static final ObjectWriter TRANSFORMERS = JSON.writer(PYTHON_LAYOUT).with(JsonNodeFeature.WRITE_PROPERTIES_SORTED);
  /** tokenizers writes its fields in declaration order. */
  private static final ObjectWriter TOKENIZERS = JSON.writer(PYTHON_LAYOUT);

  private LlamaModelFiles() {}

  /** File name -> contents, in the order to write them. {@code tiedEmbeddings}: no lm_head.weight is written. */
  static Map<String, byte[]> files(SyntheticCheckpoint.Shape shape, boolean tiedEmbeddings) {
    Map<String, byte[]> files = new LinkedHashMap<>();
    files.put("config.json", text(TRANSFORMERS, config(shape, tiedEmbeddings), "\n"));
    files.put("generation_config.json", text(TRANSFORMERS, generationConfig(), "\n"));
    files.put("tokenizer.json", text(TOKENIZERS, tokenizer(shape.vocab()), ""));
    files.put("tokenizer_config.json", text(TRANSFORMERS, tokenizerConfig(), "\n"));
    files.put("special_tokens_map.json", text(TRANSFORMERS, specialTokensMap(), "\n"));
    return files;
  }

  /** transformers' LlamaConfig for the shape, with its defaults written out as save_pretrained does. */
  static ObjectNode config(SyntheticCheckpoint.Shape shape, boolean tiedEmbeddings) {
    ObjectNode c = JSON.createObjectNode();
    c.putArray("architectures").add("LlamaForCausalLM");
    c.put("attention_bias", false);
    c.set("attention_dropout", pythonFloat(0.0));
    c.put("bos_token_id", BOS_ID);
    c.put("dtype", "bfloat16");
    // transformers 4 before 4.56 reads only torch_dtype; 5 reads either (dtype first) without a warning.
    c.put("torch_dtype", "bfloat16");
    c.put("eos_token_id", EOS_ID);
    c.put("head_dim", shape.headDim());
    c.put("hidden_act", "silu");
    c.put("hidden_size", shape.hidden());
    c.set("initializer_range", pythonFloat(0.02));
    c.put("intermediate_size", shape.intermediate());
    c.put("max_position_embeddings", MAX_POSITIONS);
    c.put("mlp_bias", false);
    c.put("model_type", "llama");
    c.put("num_attention_heads", shape.heads());
    c.put("num_hidden_layers", shape.layers());
    c.put("num_key_value_heads", shape.kvHeads());
    c.putNull("pad_token_id");
    c.put("pretraining_tp", 1);
    c.set("rms_norm_eps", pythonFloat(1e-6));
    ObjectNode rope = c.putObject("rope_parameters");
    rope.set("rope_theta", pythonFloat(10000.0));
    rope.put("rope_type", "default");
    c.put("tie_word_embeddings", tiedEmbeddings);
    c.put("transformers_version", TRANSFORMERS_VERSION);
    c.put("use_cache", true);
    c.put("vocab_size", shape.vocab());
    return c;
  }

  static ObjectNode generationConfig() {
    ObjectNode g = JSON.createObjectNode();
    g.put("_from_model_config", true);
    g.put("bos_token_id", BOS_ID);
    g.put("eos_token_id", EOS_ID);
    g.put("output_attentions", false);
    g.put("output_hidden_states", false);
    g.put("transformers_version", TRANSFORMERS_VERSION);
    g.put("use_cache", true);
    return g;
  }

  /** The tokenizer's vocabulary in id order: its first {@code vocab} tokens (see the class comment). */
  static List<String> tokens(int vocab) {
    return ALL_TOKENS.subList(0, Math.min(vocab, ALL_TOKENS.size()));
  }

  static int fullTokenizerSize() {
    return ALL_TOKENS.size();
  }

  private static List<String> allTokens() {
    LinkedHashSet<String> tokens = new LinkedHashSet<>(List.of(SPECIAL_TOKENS));
    for (int b = 0; b < 256; b++) {
      tokens.add(String.format("<0x%02X>", b));
    }
    tokens.add(SPACE);
    for (char c = '!'; c <= '~'; c++) {
      tokens.add(String.valueOf(c));
    }
    // Each merge's result follows its two parts, so any prefix of this order is a consistent tokenizer.
    for (String word : WORDS.split(" ")) {
      for (int i = 1; i <= word.length(); i++) {
        tokens.add(SPACE + word.substring(0, i));
      }
    }
    return List.copyOf(tokens);
  }

  /**
   * tokenizer.json as the tokenizers library writes transformers' LlamaTokenizer: BPE with byte fallback
   * behind SentencePiece's Metaspace pre-tokenizer, {@code <s>} before every sequence.
   */
  static ObjectNode tokenizer(int vocab) {
    List<String> tokens = tokens(vocab);
    ObjectNode t = JSON.createObjectNode();
    t.put("version", "1.0");
    t.putNull("truncation");
    t.putNull("padding");
    ArrayNode added = t.putArray("added_tokens");
    for (int id = 0; id < SPECIAL_TOKENS.length; id++) {
      added.addObject().put("id", id).put("content", SPECIAL_TOKENS[id]).put("single_word", false).put("lstrip", false)
          .put("rstrip", false).put("normalized", false).put("special", true);
    }
    t.putNull("normalizer");
    t.putObject("pre_tokenizer").put("type", "Metaspace").put("replacement", SPACE).put("prepend_scheme", "first")
        .put("split", false);
    ObjectNode post = t.putObject("post_processor").put("type", "TemplateProcessing");
    ArrayNode single = post.putArray("single");
    single.addObject().putObject("SpecialToken").put("id", SPECIAL_TOKENS[BOS_ID]).put("type_id", 0);
    single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
    ArrayNode pair = post.putArray("pair").addAll(single);
    pair.addObject().putObject("SpecialToken").put("id", SPECIAL_TOKENS[BOS_ID]).put("type_id", 1);
    pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
    ObjectNode bos = post.putObject("special_tokens").putObject(SPECIAL_TOKENS[BOS_ID]).put("id", SPECIAL_TOKENS[BOS_ID]);
    bos.putArray("ids").add(BOS_ID);
    bos.putArray("tokens").add(SPECIAL_TOKENS[BOS_ID]);
    ArrayNode decoders = t.putObject("decoder").put("type", "Sequence").putArray("decoders");
    ObjectNode replace = decoders.addObject().put("type", "Replace");
    replace.putObject("pattern").put("String", SPACE);
    replace.put("content", " ");
    decoders.addObject().put("type", "ByteFallback");
    decoders.addObject().put("type", "Fuse");
    decoders.addObject().put("type", "Strip").put("content", " ").put("start", 1).put("stop", 0);
    // No unk_token: with byte fallback every character has tokens (and LlamaTokenizer sets none either).
    ObjectNode model = t.putObject("model").put("type", "BPE").putNull("dropout").putNull("unk_token");
    model.putNull("continuing_subword_prefix").putNull("end_of_word_suffix").put("fuse_unk", true)
        .put("byte_fallback", true).put("ignore_merges", false);
    ObjectNode ids = model.putObject("vocab");
    ArrayNode merges = model.putArray("merges");
    for (int id = 0; id < tokens.size(); id++) {
      String token = tokens.get(id);
      ids.put(token, id);
      if (token.startsWith(SPACE) && token.length() > 1) {
        merges.addArray().add(token.substring(0, token.length() - 1)).add(token.substring(token.length() - 1));
      }
    }
    return t;
  }

  /** What transformers 5.18's save_pretrained writes for a LlamaTokenizer. */
  static ObjectNode tokenizerConfig() {
    ObjectNode c = JSON.createObjectNode();
    c.putNull("add_prefix_space");
    c.put("backend", "tokenizers");
    c.put("bos_token", SPECIAL_TOKENS[BOS_ID]);
    c.put("clean_up_tokenization_spaces", false);
    c.put("eos_token", SPECIAL_TOKENS[EOS_ID]);
    c.put("model_max_length", MAX_POSITIONS);
    c.put("tokenizer_class", "LlamaTokenizer");
    c.put("unk_token", SPECIAL_TOKENS[UNK_ID]);
    c.put("use_default_system_prompt", false);
    return c;
  }

  /** The special tokens as transformers 4 wrote them (transformers 5 still reads this file). */
  static ObjectNode specialTokensMap() {
    ObjectNode m = JSON.createObjectNode();
    String[] keys = {"unk_token", "bos_token", "eos_token"};
    for (int id = 0; id < keys.length; id++) {
      m.putObject(keys[id]).put("content", SPECIAL_TOKENS[id]).put("lstrip", false).put("normalized", false)
          .put("rstrip", false).put("single_word", false);
    }
    return m;
  }

  /** transformers ends its files with a newline, tokenizers does not. */
  private static byte[] text(ObjectWriter writer, JsonNode node, String end) {
    try {
      return (writer.writeValueAsString(node) + end).getBytes(StandardCharsets.UTF_8);
    } catch (JsonProcessingException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * {@code v} as Python's {@code repr} writes a float ({@code 1e-06}, {@code 10000.0}), which is how
   * transformers' JSON has it; Jackson would write {@code 1.0E-6}.
   */
  static JsonNode pythonFloat(double v) {
    BigDecimal d = new BigDecimal(Double.toString(v)).stripTrailingZeros();
    int exponent = d.precision() - d.scale() - 1;
    String text;
    if (exponent < -4 || exponent >= 16) {
      String digits = d.unscaledValue().abs().toString();
      text = (d.signum() < 0 ? "-" : "") + digits.charAt(0) + (digits.length() > 1 ? "." + digits.substring(1) : "")
          + String.format("e%s%02d", exponent < 0 ? "-" : "+", Math.abs(exponent));
    } else {
      text = d.toPlainString() + (d.scale() > 0 ? "" : ".0");
    }
    return JSON.getNodeFactory().rawValueNode(new RawValue(text));
  }
}
