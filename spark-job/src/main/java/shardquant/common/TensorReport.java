package shardquant.common;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.Serializable;
import shardquant.kernels.verify.QuantStats;

/**
 * How one quantized tensor came out: SQNR, max abs error, clipped fraction, non-finite values, the
 * backend that quantized it and the time its shards took. Stored in each output file's header (so a
 * rerun that keeps the file keeps its report), all but the backend and the time: the same job writes
 * the same bytes every run, on every backend. {@code quantizeNanos} is -1 for a tensor of a kept file.
 */
public record TensorReport(String tensor, double sqnrDb, float maxAbsError, double clippedFraction, long elements,
    long nonFinite, String backend, long quantizeNanos) implements Serializable {

  /** Every value is written as a JSON string of at most this many characters (so headers can be sized up front). */
  public static final int MAX_FIELD_CHARS = 24;
  static final String[] FIELDS = {"sqnr_db", "max_abs_error", "clipped_fraction", "elements", "non_finite"};
  /** The backend of a tensor whose report was read back from a file's header (which names none). */
  public static final String FROM_FILE = "(from the file)";

  public static TensorReport of(String tensor, QuantStats s, String backend, long nanos) {
    return new TensorReport(tensor, s.sqnrDb(), s.maxAbsError(), s.clippedFraction(), s.count(), s.nonFinite(), backend,
        nanos);
  }

  /** The widest value of every field, for sizing a header before the stats exist. */
  public static ObjectNode placeholderJson() {
    ObjectNode o = JsonNodeFactory.instance.objectNode();
    for (String f : FIELDS) {
      o.put(f, "x".repeat(MAX_FIELD_CHARS));
    }
    return o;
  }

  /** The header form (no time). */
  public ObjectNode toJson() {
    ObjectNode o = JsonNodeFactory.instance.objectNode();
    String[] values = {Double.toString(sqnrDb), Float.toString(maxAbsError), Double.toString(clippedFraction),
        Long.toString(elements), Long.toString(nonFinite)};
    for (int i = 0; i < FIELDS.length; i++) {
      if (values[i].length() > MAX_FIELD_CHARS) {
        throw new IllegalStateException(FIELDS[i] + " '" + values[i] + "' is longer than " + MAX_FIELD_CHARS + " characters");
      }
      o.put(FIELDS[i], values[i]);
    }
    return o;
  }

  public static TensorReport fromJson(String tensor, JsonNode o) {
    return new TensorReport(tensor, Double.parseDouble(o.get("sqnr_db").textValue()),
        Float.parseFloat(o.get("max_abs_error").textValue()), Double.parseDouble(o.get("clipped_fraction").textValue()),
        Long.parseLong(o.get("elements").textValue()), Long.parseLong(o.get("non_finite").textValue()),
        FROM_FILE, -1);
  }
}
