package shardquant.kernels.quant;

import com.fasterxml.jackson.core.io.JsonStringEncoder;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;

/**
 * The per-tensor metadata torchao's safetensors support writes
 * ({@code torchao/prototype/safetensors/safetensors_support.py}, {@code flatten_tensor_state_dict}):
 * {@code {"_type", "_data", "_tensor_data_names"}} as Python's {@code json.dumps} prints it, with
 * {@code ", "} and {@code ": "} separators and non-ASCII escaped, so the bytes match torchao's files.
 */
public final class TorchaoMetadata {
  static final JsonNodeFactory JSON = JsonNodeFactory.instance;

  private TorchaoMetadata() {}

  /** The metadata value for a quantized tensor. */
  public static String quantized(QuantConfig c, long[] shape, DType dtype) {
    return tensor(c.recipe().torchaoType(), c.recipe().kernel().torchaoData(shape, dtype, c), c.recipe().dataNames());
  }

  /**
   * The metadata value for a tensor of type {@code type} with attributes {@code data} and stored parts
   * {@code dataNames}; for forms outside the recipe table (the repack command's plain int4 form).
   */
  public static String tensor(String type, ObjectNode data, List<String> dataNames) {
    ObjectNode root = JSON.objectNode();
    root.put("_type", type);
    root.set("_data", data);
    dataNames.forEach(root.putArray("_tensor_data_names")::add);
    return pythonJson(root);
  }

  /** An empty {@code _data} object to fill. */
  public static ObjectNode object() {
    return JSON.objectNode();
  }

  /**
   * torchao's key for one stored part of a tensor ({@code flatten_tensor_state_dict}): {@code a.b.weight}
   * stores its {@code qdata} as {@code a.b._weight_qdata}.
   */
  public static String storedKey(String tensor, String dataName) {
    int dot = tensor.lastIndexOf('.');
    return tensor.substring(0, dot + 1) + "_" + tensor.substring(dot + 1) + "_" + dataName;
  }

  /**
   * The keys a tensor's parts are stored under, from its parsed metadata value (null or
   * {@code {"_type": "Tensor"}}: a plain tensor, stored under its own name).
   */
  public static List<String> storedKeys(String tensor, JsonNode meta) {
    if (meta == null || "Tensor".equals(meta.path("_type").asText())) {
      return List.of(tensor);
    }
    List<String> keys = new java.util.ArrayList<>();
    meta.path("_tensor_data_names").forEach(n -> keys.add(storedKey(tensor, n.asText())));
    return keys;
  }

  /** The metadata value for a tensor kept in high precision. */
  public static String plain() {
    return "{\"_type\": \"Tensor\"}";
  }

  /** torchao's encoding of a {@code torch.dtype} value. */
  public static ObjectNode dtype(String torchName) {
    ObjectNode n = JSON.objectNode();
    n.put("_type", "torch.dtype");
    n.put("_data", torchName);
    return n;
  }

  public static ObjectNode blockAndShape(int[] blockSize, long[] shape) {
    ObjectNode data = JSON.objectNode();
    data.set("block_size", ints(blockSize));
    data.set("shape", longs(shape));
    return data;
  }

  public static JsonNode ints(int... values) {
    var a = JSON.arrayNode();
    for (int v : values) {
      a.add(v);
    }
    return a;
  }

  static JsonNode longs(long... values) {
    var a = JSON.arrayNode();
    for (long v : values) {
      a.add(v);
    }
    return a;
  }

  /** Serializes as Python's {@code json.dumps(obj)} with its defaults. */
  public static String pythonJson(JsonNode node) {
    StringBuilder sb = new StringBuilder();
    write(node, sb);
    return sb.toString();
  }

  private static void write(JsonNode node, StringBuilder sb) {
    if (node.isObject()) {
      sb.append('{');
      boolean first = true;
      for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> e = it.next();
        sb.append(first ? "" : ", ");
        first = false;
        string(e.getKey(), sb);
        sb.append(": ");
        write(e.getValue(), sb);
      }
      sb.append('}');
    } else if (node.isArray()) {
      sb.append('[');
      for (int i = 0; i < node.size(); i++) {
        sb.append(i == 0 ? "" : ", ");
        write(node.get(i), sb);
      }
      sb.append(']');
    } else if (node.isTextual()) {
      string(node.textValue(), sb);
    } else if (node.isNull()) {
      sb.append("null");
    } else {
      sb.append(node.asText()); // numbers and booleans print alike in JSON and Python
    }
  }

  private static void string(String s, StringBuilder sb) {
    sb.append('"');
    for (char ch : JsonStringEncoder.getInstance().quoteAsString(s)) {
      if (ch > 0x7E) {
        sb.append(String.format("\\u%04x", (int) ch));
      } else {
        sb.append(ch);
      }
    }
    sb.append('"');
  }
}
