package shardquant.job;

import java.util.Map;
import shardquant.plan.JobSpec;

/**
 * A quantize job as the user asked for it. {@code master} null means the {@code spark.master} already
 * set (by spark-submit) or, failing that, embedded {@code local[*]}. A repack job takes only the sizes
 * of {@code spec} (its config is null: repack does not quantize).
 */
public record JobOptions(String input, String output, JobSpec spec, String master, String backend, String dumpShards,
    Map<String, String> sparkConf) {
}
