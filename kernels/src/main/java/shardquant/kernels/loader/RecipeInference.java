package shardquant.kernels.loader;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.quant.Int4Layout;
import shardquant.kernels.quant.PartSpec;
import shardquant.kernels.quant.QuantConfig;
import shardquant.kernels.quant.Recipe;
import shardquant.kernels.quant.TorchaoMetadata;
import shardquant.kernels.safetensors.SafetensorsFormatException;
import shardquant.kernels.safetensors.TensorEntry;

/**
 * Reads one tensor's torchao metadata ({@code {"_type", "_data", "_tensor_data_names"}}, see
 * {@link TorchaoMetadata}) back into a {@link TensorInfo}. Several recipes share a torchao type (8da4w
 * and intx-weight-only, int8-weight-only and int8-dynamic), so the recipe is the one whose
 * {@code torchaoData} for the inferred group size, bits, shape and dtype is exactly the stored
 * {@code _data}: the recipe table stays the one place that knows what each recipe writes.
 */
final class RecipeInference {
  private static final ObjectMapper JSON = new ObjectMapper();
  /** JSON equality where 1 (int) equals 1 (long): parsed and generated numbers differ in Java type only. */
  private static final Comparator<JsonNode> SAME_VALUE = (a, b) -> a.equals(b)
      || a.isNumber() && b.isNumber() && a.decimalValue().compareTo(b.decimalValue()) == 0 ? 0 : 1;

  private RecipeInference() {}

  /**
   * The tensor {@code name} of {@code file}, from its metadata value ({@code metadataJson}, null when
   * the file has none for it, as in a plain safetensors file) and the file's stored tensors.
   */
  /**
   * Whether {@code file} stores (some part of) the listed tensor {@code name}. A file's
   * {@code tensor_names} and metadata may cover the whole model, as transformers' {@code save_pretrained}
   * writes every shard: a tensor is in the file that stores its parts.
   */
  static boolean storedIn(Path file, String name, String metadataJson, Map<String, TensorEntry> entries)
      throws SafetensorsFormatException {
    JsonNode meta = metadataJson == null ? null : parse(file, name, metadataJson);
    return TorchaoMetadata.storedKeys(name, meta).stream().anyMatch(entries::containsKey);
  }

  static TensorInfo describe(Path file, String name, String metadataJson, Map<String, TensorEntry> entries)
      throws SafetensorsFormatException {
    JsonNode meta = metadataJson == null ? null : parse(file, name, metadataJson);
    if (meta == null || "Tensor".equals(meta.path("_type").asText())) {
      TensorEntry e = entries.get(name);
      if (e == null) {
        throw new SafetensorsFormatException(file, name, "listed in tensor_names as a plain tensor but not stored in the file");
      }
      return new TensorInfo(name, null, e.shape(), e.dtype(), file,
          List.of(new TensorInfo.StoredPart(null, name, e.dtype(), e.shape())));
    }
    String type = meta.path("_type").asText();
    JsonNode data = meta.path("_data");
    List<String> dataNames = new ArrayList<>();
    meta.path("_tensor_data_names").forEach(n -> dataNames.add(n.asText()));
    List<TensorInfo.StoredPart> parts = new ArrayList<>();
    for (String dataName : dataNames) {
      String key = TorchaoMetadata.storedKey(name, dataName);
      TensorEntry e = entries.get(key);
      if (e == null) {
        throw new SafetensorsFormatException(file, name, "its metadata names part '" + dataName + "' but the file does not"
            + " store '" + key + "' (incomplete or mislabeled checkpoint)");
      }
      parts.add(new TensorInfo.StoredPart(dataName, key, e.dtype(), e.shape()));
    }
    long[] shape = shape(file, name, data, parts);
    if (type.equals(Int4Layout.PLAIN_TYPE)) {
      return plainInt4(file, name, meta, shape, parts);
    }
    // Only the tinygemm int4 types omit the dtype, and they take bfloat16 weights only.
    DType dtype = data.has("dtype") ? torchDType(file, name, data.path("dtype").path("_data").asText()) : DType.BF16;
    QuantConfig config = config(file, name, type, data, dataNames, shape, dtype);
    checkParts(file, name, config, shape, dtype, parts);
    return new TensorInfo(name, config, shape, dtype, file, parts);
  }

  /**
   * The plain int4 form of {@code shardquant repack}: its group size is {@code block_size}'s last entry, and
   * the whole metadata and every part must be exactly what {@link Int4Layout#PLAIN} writes for it.
   */
  private static TensorInfo plainInt4(Path file, String name, JsonNode meta, long[] shape, List<TensorInfo.StoredPart> parts)
      throws SafetensorsFormatException {
    JsonNode block = meta.path("_data").path("block_size");
    int groupSize = block.isArray() && block.size() == 2 ? block.get(1).asInt() : 0;
    String why = shape.length != 2 || groupSize <= 0 ? "metadata gives no 2-D qdata and block_size [1, group]"
        : Int4Layout.PLAIN.refusal(shape[0], shape[1], groupSize);
    if (why == null && !parse(file, name, Int4Layout.PLAIN.torchaoMetadata(shape, groupSize)).equals(SAME_VALUE, meta)) {
      why = "metadata is not what shardquant writes for it: " + abbreviate(meta.toString());
    }
    List<PartSpec> specs = why == null ? Int4Layout.PLAIN.parts(shape[0], shape[1], groupSize) : List.of();
    for (int i = 0; i < specs.size() && why == null; i++) {
      PartSpec want = specs.get(i);
      TensorInfo.StoredPart got = parts.get(i);
      if (want.dtype() != got.dtype() || !Arrays.equals(want.shape(), got.shape())) {
        why = "part '" + got.key() + "' is stored as " + got.dtype().safetensorsName() + Arrays.toString(got.shape())
            + " but the plain int4 form of group " + groupSize + " stores " + want.dtype().safetensorsName()
            + Arrays.toString(want.shape());
      }
    }
    if (why != null) {
      throw new SafetensorsFormatException(file, name, Int4Layout.PLAIN_TYPE + ": " + why);
    }
    return new TensorInfo(name, null, shape, DType.BF16, file, parts, Int4Layout.PLAIN);
  }

  private static JsonNode parse(Path file, String name, String json) throws SafetensorsFormatException {
    try {
      JsonNode n = JSON.readTree(json);
      if (n != null && n.isObject() && n.path("_type").isTextual()) {
        return n;
      }
    } catch (JsonProcessingException e) {
      // reported below
    }
    throw new SafetensorsFormatException(file, name, "metadata is not torchao's {\"_type\": ..., \"_data\": ...} JSON: "
        + abbreviate(json));
  }

  /** {@code _data.shape} where torchao stores it; otherwise the unpadded [N][K] of {@code qdata}. */
  private static long[] shape(Path file, String name, JsonNode data, List<TensorInfo.StoredPart> parts)
      throws SafetensorsFormatException {
    if (data.path("shape").isArray()) {
      long[] s = new long[data.path("shape").size()];
      for (int i = 0; i < s.length; i++) {
        s[i] = data.path("shape").get(i).asLong();
      }
      return s;
    }
    for (TensorInfo.StoredPart p : parts) {
      if (p.dataName().equals("qdata") && p.shape().length == 2) {
        return p.shape();
      }
    }
    throw new SafetensorsFormatException(file, name, "metadata has no shape and no 2-D qdata part to take it from");
  }

  private static DType torchDType(Path file, String name, String torchName) throws SafetensorsFormatException {
    try {
      return DType.fromTorchName(torchName);
    } catch (IllegalArgumentException e) {
      throw new SafetensorsFormatException(file, name, "metadata dtype '" + torchName + "' is not one shardquant reads");
    }
  }

  private static QuantConfig config(Path file, String name, String type, JsonNode data, List<String> dataNames,
      long[] shape, DType dtype) throws SafetensorsFormatException {
    JsonNode block = data.path("block_size");
    int blockSize = block.isArray() && block.size() > 0 ? block.get(block.size() - 1).asInt() : block.asInt(0);
    String target = data.path("target_dtype").path("_data").asText("");
    List<Recipe> sameType = Arrays.stream(Recipe.values()).filter(r -> r.torchaoType().equals(type)).toList();
    if (sameType.isEmpty()) {
      throw new SafetensorsFormatException(file, name, "torchao type '" + type + "' is not one shardquant reads; it reads "
          + Arrays.stream(Recipe.values()).map(Recipe::torchaoType).distinct().toList());
    }
    List<QuantConfig> matches = new ArrayList<>();
    for (Recipe r : sameType) {
      int bits = target.matches("int[1-8]") ? target.charAt(3) - '0' : r.defaultBits();
      QuantConfig c;
      try {
        c = new QuantConfig(r, r.groupwise() ? blockSize : 0, bits);
      } catch (IllegalArgumentException e) {
        continue;
      }
      if (r.dataNames().equals(dataNames) && r.kernel().torchaoData(shape, dtype, c).equals(SAME_VALUE, data)) {
        matches.add(c);
      }
    }
    if (matches.size() != 1) {
      throw new SafetensorsFormatException(file, name, "metadata of torchao type '" + type + "' matches "
          + (matches.isEmpty() ? "none" : matches) + " of shardquant's recipes for it ("
          + sameType.stream().map(Recipe::cliName).toList() + "): " + abbreviate(data.toString()));
    }
    return matches.get(0);
  }

  /** The stored parts must be exactly what the recipe stores for this shape, or row ranges would read garbage. */
  private static void checkParts(Path file, String name, QuantConfig c, long[] shape, DType dtype,
      List<TensorInfo.StoredPart> parts) throws SafetensorsFormatException {
    if (shape.length != 2) {
      throw new SafetensorsFormatException(file, name, c + " stores 2-D weights, metadata says shape " + Arrays.toString(shape));
    }
    List<PartSpec> specs = c.recipe().kernel().parts(shape[0], shape[1], dtype, c);
    for (int i = 0; i < specs.size(); i++) {
      PartSpec want = specs.get(i);
      TensorInfo.StoredPart got = parts.get(i);
      if (want.dtype() != got.dtype() || !Arrays.equals(want.shape(), got.shape())) {
        throw new SafetensorsFormatException(file, name, "part '" + got.key() + "' is stored as " + got.dtype().safetensorsName()
            + Arrays.toString(got.shape()) + " but " + c + " of a " + dtype.torchName() + Arrays.toString(shape)
            + " tensor stores " + want.dtype().safetensorsName() + Arrays.toString(want.shape()));
      }
    }
  }

  private static String abbreviate(String s) {
    return s.length() <= 300 ? s : s.substring(0, 300) + "...";
  }
}
