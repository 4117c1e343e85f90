package shardquant.arrow;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/** A quantized shard of original tensor {@code tensor}, rows [rowStart, rowEnd), with its parts in stored order. */
public record QuantizedShard(String tensor, long rowStart, long rowEnd, List<ShardPart> parts) {

  public QuantizedShard {
    if (tensor == null || tensor.isEmpty()) {
      throw new IllegalArgumentException("quantized shard needs a tensor name, got '" + tensor + "'");
    }
    if (rowStart < 0 || rowStart > rowEnd) {
      throw new IllegalArgumentException("quantized shard of '" + tensor + "' has bad rows [" + rowStart + ", "
          + rowEnd + ")");
    }
    // One Arrow row per part carries the shard's identity, so a shard without parts could not be read back.
    if (parts == null || parts.isEmpty()) {
      throw new IllegalArgumentException("quantized shard of '" + tensor + "' rows [" + rowStart + ", " + rowEnd
          + ") has no parts");
    }
    parts = List.copyOf(parts);
    Set<String> keys = new HashSet<>();
    for (ShardPart p : parts) {
      if (!keys.add(p.key())) {
        throw new IllegalArgumentException("quantized shard of '" + tensor + "' has two parts named '" + p.key()
            + "'");
      }
    }
  }
}
