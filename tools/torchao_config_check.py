"""Checks shardquant's torchao config JSON against torchao's own encoding.

Usage: torchao_config_check.py CASES.json

CASES.json maps a Python expression that builds a torchao config (evaluated with torch and the
names of torchao.quantization and its quantize_.workflows in scope, e.g. "Int4WeightOnlyConfig(group_size=64,
int4_packing_format='tile_packed_to_4d')") to the JSON shardquant writes under
quantization_config.quant_type.default for it. For each case this prints "ok: EXPR" when
torchao.core.config.config_to_dict(config) equals the JSON and config_from_dict(JSON) rebuilds an
equal config, else "FAIL: EXPR: ..."; exit 0 only when every case passes.

Run with the environment of ../shared/tools/torch-env.sh and TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1.
"""
import json
import sys

import torch
import torchao.quantization as q
import importlib
from torchao.core.config import config_from_dict, config_to_dict


def main():
    if len(sys.argv) != 2:
        print("usage: torchao_config_check.py CASES.json", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    w = importlib.import_module("torchao.quantization.quantize_.workflows")  # quantize_ is also a function
    scope = {"torch": torch, **{n: getattr(m, n) for m in (w, q) for n in dir(m) if not n.startswith("_")}}
    failed = 0
    for expr, ours in cases.items():
        config = eval(expr, scope)  # expressions come from shardquant's own tests
        theirs = config_to_dict(config)
        if theirs != ours:
            failed += 1
            print(f"FAIL: {expr}: torchao encodes {json.dumps(theirs, sort_keys=True)}, shardquant wrote"
                  f" {json.dumps(ours, sort_keys=True)}")
        elif config_from_dict(ours) != config:
            failed += 1
            print(f"FAIL: {expr}: config_from_dict does not rebuild it from shardquant's JSON")
        else:
            print(f"ok: {expr}")
    print(f"torchao_config_check: {len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
