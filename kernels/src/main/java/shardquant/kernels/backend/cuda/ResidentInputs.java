package shardquant.kernels.backend.cuda;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import shardquant.kernels.dtype.DType;
import shardquant.kernels.tensor.Tensor;

/**
 * Input shards kept on one GPU between two stages of a job, so the second does not upload them again:
 * NF4's first pass ({@link CudaNf4#firstPass}) offers its uploaded shard, the second pass's
 * {@link Gpu#shard} takes it (no upload) and frees it with the shard. A shard is recognized by its
 * {@link Tensor#origin} with its dtype and shape; a tensor without an origin is never kept nor found.
 *
 * <p>At most {@code budget} bytes are kept. Every first pass of a job runs before any second pass, so
 * the first shards that fit stay and later ones are not kept (no eviction: a kept shard is as likely to
 * be taken as a later one, and evicting would only add an upload). A miss (the second pass runs on
 * another executor or GPU, the budget was full, no origin) uploads as before; either way the bytes are
 * the same.
 *
 * <p>Stale entries (a shard whose second pass ran elsewhere, a failed stage or job) are freed: all of a
 * job's at once when the job ends ({@link #release}, which spark-job's driver calls in local mode; a
 * cluster's executors end with the application, and their device memory with them), and every entry of
 * another job as soon as a shard of a new job is offered or looked up here. Nothing older than the
 * running job outlives its first access.
 */
final class ResidentInputs {
  /** Keeps nothing: for devices of unknown memory and wrappers (the bench's recorder). */
  static final ResidentInputs NONE = new ResidentInputs(0);

  private record Key(Tensor.Origin origin, DType dtype, List<Long> shape) {
    static Key of(Tensor t) {
      return t.origin() == null ? null
          : new Key(t.origin(), t.dtype(), Arrays.stream(t.shape()).boxed().toList());
    }
  }

  private final long budget;
  private final Map<Key, CudaDevice.Memory> kept = new LinkedHashMap<>();
  private long used;
  private long hits;
  private long offered;

  ResidentInputs(long budget) {
    this.budget = Math.max(0, budget);
  }

  long budget() {
    return budget;
  }

  /**
   * Keeps {@code shard}'s input (uploaded, its kernels run) for a later {@link #take} of a tensor like
   * {@code rows}, if {@code rows} has an origin and the shard fits in what is left of the budget; the
   * shard then no longer frees it. Returns whether it was kept.
   */
  boolean offer(Tensor rows, CudaShard shard) {
    Key key = Key.of(rows);
    if (key == null || budget == 0) {
      return false;
    }
    List<CudaDevice.Memory> stale;
    boolean keep;
    synchronized (this) {
      stale = dropOtherJobs(key.origin().job());
      long bytes = shard.input().size();
      keep = !kept.containsKey(key) && used + bytes <= budget;
      if (keep) {
        kept.put(key, shard.keepInput());
        used += bytes;
        offered++;
      }
    }
    free(stale);
    return keep;
  }

  /** The kept input of a tensor like {@code rows}, handed over (close it), or null; no entry keeps it. */
  CudaDevice.Memory take(Tensor rows) {
    Key key = Key.of(rows);
    if (key == null || budget == 0) {
      return null;
    }
    List<CudaDevice.Memory> stale;
    CudaDevice.Memory m;
    synchronized (this) {
      stale = dropOtherJobs(key.origin().job());
      m = kept.remove(key);
      if (m != null) {
        used -= m.size();
        hits++;
      }
    }
    free(stale);
    return m;
  }

  /** Frees every entry of {@code job} (every entry where null): the job ended. Returns how many. */
  int release(String job) {
    List<CudaDevice.Memory> gone = new ArrayList<>();
    synchronized (this) {
      kept.entrySet().removeIf(e -> {
        if (job == null || e.getKey().origin().job().equals(job)) {
          gone.add(e.getValue());
          used -= e.getValue().size();
          return true;
        }
        return false;
      });
    }
    free(gone);
    return gone.size();
  }

  /** Bytes kept now. */
  synchronized long used() {
    return used;
  }

  /** Entries kept now. */
  synchronized int size() {
    return kept.size();
  }

  /** Inputs taken so far (uploads saved). */
  synchronized long hits() {
    return hits;
  }

  /** Inputs kept so far. */
  synchronized long offered() {
    return offered;
  }

  private List<CudaDevice.Memory> dropOtherJobs(String job) {
    List<CudaDevice.Memory> gone = new ArrayList<>();
    kept.entrySet().removeIf(e -> {
      if (!e.getKey().origin().job().equals(job)) {
        gone.add(e.getValue());
        used -= e.getValue().size();
        return true;
      }
      return false;
    });
    return gone;
  }

  private static void free(List<CudaDevice.Memory> memory) {
    for (CudaDevice.Memory m : memory) {
      m.close();
    }
  }
}
