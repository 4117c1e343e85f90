package shardquant.job;

import java.util.Map;
import shardquant.plan.JobSpec;

/**
 * A quantize job as the user asked for it. {@code master} null means the {@code spark.master} already
 * set (by spark-submit) or, failing that, embedded {@code local[*]}.
 */
public record JobOptions(String input, String output, JobSpec spec, String master, String backend, String dumpShards,
    Map<String, String> sparkConf) {
}
