#!/usr/bin/env bash
# Spark GPU discovery script (spark.executor.resource.gpu.discoveryScript,
# spark.worker.resource.gpu.discoveryScript), in the style of spark-rapids' getGpusResources.sh.
# Prints one JSON line naming this node's GPUs by index:
#   {"name": "gpu", "addresses": ["0","1"]}
# With no nvidia-smi, no driver or no GPU it prints an empty list and still exits 0, so an executor
# on a CPU node starts and shardquant's CPU kernels run; a non-zero exit would make Spark fail it.
set -u

addresses=""
if command -v nvidia-smi >/dev/null 2>&1; then
  # nvidia-smi exits non-zero without a driver; keep only lines that are plain indices.
  while IFS= read -r index; do
    index="${index//[[:space:]]/}"
    [[ "$index" =~ ^[0-9]+$ ]] || continue
    addresses+="${addresses:+,}\"$index\""
  done < <(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null || true)
fi

echo "{\"name\": \"gpu\", \"addresses\": [$addresses]}"
