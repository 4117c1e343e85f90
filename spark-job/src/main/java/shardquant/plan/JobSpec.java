package shardquant.plan;

import java.io.Serializable;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import shardquant.common.UserError;
import shardquant.kernels.quant.QuantConfig;

/**
 * What the user asked for: the recipe and its parameters, which tensors to quantize, and how big
 * shards and output files may be. {@code include}/{@code exclude} are regular expressions matched
 * against whole tensor names (null: not given).
 */
public record JobSpec(QuantConfig config, String include, String exclude, long shardBytes, long outputFileBytes)
    implements Serializable {
  public static final long DEFAULT_SHARD_BYTES = 64L << 20;
  public static final long DEFAULT_OUTPUT_FILE_BYTES = 5L << 30;

  public JobSpec {
    if (shardBytes < 1) {
      throw new UserError("--shard-bytes must be positive, got " + shardBytes);
    }
    if (outputFileBytes < 1) {
      throw new UserError("--output-file-bytes must be positive, got " + outputFileBytes);
    }
    compile("--include", include);
    compile("--exclude", exclude);
  }

  /**
   * Whether a tensor is quantized. By default (DESIGN.md): every 2-D floating {@code *.weight} except
   * embeddings, norms and {@code lm_head}; {@code --include} replaces that rule, {@code --exclude}
   * removes from whichever rule applies.
   */
  public boolean selects(InputTensor t) {
    String n = t.name();
    boolean in = include != null ? compile("--include", include).matcher(n).matches() : isDefaultTarget(t);
    return in && (exclude == null || !compile("--exclude", exclude).matcher(n).matches());
  }

  /**
   * The default rule. Only {@link shardquant.kernels.dtype.DType#quantizable() quantizable} dtypes: an FP8
   * checkpoint's FP8 weights (and an F64 one's) are copied, not refused.
   */
  static boolean isDefaultTarget(InputTensor t) {
    String n = t.name().toLowerCase(java.util.Locale.ROOT);
    return t.rank() == 2 && t.dtype().quantizable() && n.endsWith(".weight") && !n.contains("embed")
        && !n.contains("norm") && !isOutputHead(n) && !isRouter(n);
  }

  /** {@code lm_head}: the output embedding, which transformers keeps in high precision by default. */
  static boolean isOutputHead(String name) {
    return name.startsWith("lm_head.") || name.contains(".lm_head.");
  }

  /**
   * A Mixture-of-Experts router ({@code mlp.gate}, {@code router}, Mixtral's {@code block_sparse_moe.gate},
   * Qwen's {@code shared_expert_gate}): a tiny [experts, hidden] matrix whose precision decides which
   * experts run, left in high precision by default as llm-compressor's recipes do. Not {@code gate_proj}.
   */
  static boolean isRouter(String name) {
    return ROUTER.matcher(name).find();
  }

  private static final Pattern ROUTER =
      Pattern.compile("(^|\\.)(mlp\\.gate|router|block_sparse_moe\\.gate|shared_expert_gate)\\.weight$");

  private static Pattern compile(String option, String regex) {
    if (regex == null) {
      return null;
    }
    try {
      return Pattern.compile(regex, Pattern.DOTALL); // names are data: '.' matches a line break in one too
    } catch (PatternSyntaxException e) {
      throw new UserError(option + " '" + regex + "' is not a valid regular expression: " + e.getDescription());
    }
  }
}
