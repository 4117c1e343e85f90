package shardquant.kernels.golden;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import shardquant.kernels.safetensors.SafetensorsFile;
import shardquant.kernels.safetensors.TensorEntry;
import shardquant.kernels.tensor.Tensor;

/** One entry of a golden index.json and its open safetensors file. */
public final class GoldenCase {
  private final JsonNode params;
  private final SafetensorsFile file;

  GoldenCase(JsonNode params, SafetensorsFile file) {
    this.params = params;
    this.file = file;
  }

  /** The index.json entry: kind, file, the case's parameters, and tensors. */
  public JsonNode params() {
    return params;
  }

  public String file() {
    return params.path("file").asText();
  }

  public String kind() {
    return params.path("kind").asText();
  }

  /** An integer parameter that must be present. */
  public int intParam(String name) {
    JsonNode n = params.get(name);
    if (n == null || !n.canConvertToInt()) {
      throw new IllegalArgumentException(file() + ": parameter '" + name + "' is missing or not an integer");
    }
    return n.intValue();
  }

  /** A text parameter that must be present. */
  public String textParam(String name) {
    JsonNode n = params.get(name);
    if (n == null || n.isNull()) {
      throw new IllegalArgumentException(file() + ": parameter '" + name + "' is missing");
    }
    return n.asText();
  }

  public boolean has(String tensor) {
    return file.has(tensor);
  }

  public Tensor tensor(String name) throws IOException {
    return file.read(name);
  }

  public List<String> tensorNames() {
    List<String> names = new ArrayList<>();
    for (TensorEntry e : file.entries()) {
      names.add(e.name());
    }
    return names;
  }
}
