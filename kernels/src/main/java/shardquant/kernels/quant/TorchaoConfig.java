package shardquant.kernels.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * torchao's JSON encoding of a quantization config, {@code config_to_dict} in
 * {@code torchao/core/config.py} ({@code ConfigJSONEncoder}): a config or dataclass is
 * {@code {"_type": class name, "_version": its version, "_data": {field: encoded value}}} with every
 * field the class declares (but {@code version}); an enum is {@code {"_type": enum class, "_data": member
 * name}}; a {@code torch.dtype} is {@code {"_type": "torch.dtype", "_data": "int4"}}; None is null. This is
 * the value transformers' {@code TorchAoConfig} stores under {@code quant_type.default} in config.json and
 * vLLM's {@code TorchAOConfig.from_config} reads back with {@code config_from_dict}. Each recipe builds its
 * config from these pieces ({@link RecipeKernel#torchaoConfig}); the field lists follow torchao 0.19's
 * classes in {@code torchao/quantization/quant_api.py} and {@code granularity.py}.
 */
public final class TorchaoConfig {
  /** The {@code version} torchao 0.19's granularity dataclasses carry (AOBaseConfig's default). */
  static final int DEFAULT_VERSION = 1;

  private TorchaoConfig() {}

  /** A config or dataclass instance: {@code _type}, {@code _version}, and {@code _data} to fill, in field order. */
  static ObjectNode object(String type, int version, ObjectNode data) {
    ObjectNode o = TorchaoMetadata.JSON.objectNode();
    o.put("_type", type);
    o.put("_version", version);
    o.set("_data", data);
    return o;
  }

  static ObjectNode fields() {
    return TorchaoMetadata.JSON.objectNode();
  }

  /** An enum member ({@code MappingType.SYMMETRIC}): the class name and the member's name. */
  static ObjectNode enumValue(String type, String member) {
    ObjectNode o = TorchaoMetadata.JSON.objectNode();
    o.put("_type", type);
    o.put("_data", member);
    return o;
  }

  /** {@code PerGroup(group_size)}. */
  static ObjectNode perGroup(int groupSize) {
    ObjectNode data = fields();
    data.put("group_size", groupSize);
    return object("PerGroup", DEFAULT_VERSION, data);
  }

  /** {@code PerRow(dim=-1)}: one scale per output row. */
  static ObjectNode perRow() {
    ObjectNode data = fields();
    data.put("dim", -1);
    return object("PerRow", DEFAULT_VERSION, data);
  }

  static ObjectNode mapping(MappingType m) {
    return enumValue("MappingType", m.name());
  }

  /** The class name a config's JSON names ({@code "Int8WeightOnlyConfig"}), or null for no config. */
  public static String typeOf(JsonNode config) {
    return config == null || config.isNull() ? null : config.path("_type").asText(null);
  }
}
